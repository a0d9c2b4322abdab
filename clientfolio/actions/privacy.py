"""Privacy in one place: consent, correction, erasure, access, pseudonyms and event retention.

Each right lives in a module of its own; this module gathers their public functions:

- consent: `record_consent`, `consent_status` (clientfolio.actions.consent), `import_consent_file`
- correction (Art. 16): `correct_customer`
- erasure (Art. 17): `plan_erasure`, `erase_customer`, and `erasure_check` (erased customers back?)
- access (Art. 15): `write_access_export`
- sharing: `pseudonym_key`, `pseudonymise_id`, `pseudonymise_frame`, `pseudonymise_portfolio`
- retention: `set_event_retention`, `retention_days`
"""

from __future__ import annotations

from clientfolio.actions.access import write_access_export
from clientfolio.actions.consent import consent_status, record_consent
from clientfolio.actions.consent_file import import_consent_file
from clientfolio.actions.correction import CORRECTABLE, correct_customer
from clientfolio.actions.erasure import erase_customer, plan_erasure
from clientfolio.actions.pseudonym import pseudonym_key, pseudonymise_frame, pseudonymise_id, pseudonymise_portfolio
from clientfolio.store.pseudonym import erasure_check
from clientfolio.store.retention import retention_days, set_event_retention

__all__ = [
    "CORRECTABLE", "consent_status", "correct_customer", "erase_customer", "erasure_check", "import_consent_file",
    "plan_erasure", "pseudonym_key", "pseudonymise_frame", "pseudonymise_id", "pseudonymise_portfolio",
    "record_consent", "retention_days", "set_event_retention", "write_access_export",
]
