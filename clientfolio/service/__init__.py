"""The always-on service: the API app, workspaces and keys, and webhook delivery."""
