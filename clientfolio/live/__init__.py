"""The living portfolio's pure parts: why a customer is in a segment, who hears about a move, what moved.

- :mod:`~clientfolio.live.reasons`: the reason for a membership, in plain words with its numbers.
"""

from clientfolio.live.reasons import describe_change, explain

__all__ = ["describe_change", "explain"]
