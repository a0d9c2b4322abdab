"""The import layouts of the tools a segment is exported to, as their documentation gives them.

Each layout is plain data (name, columns in order, the columns the tool requires, the consent
channel, the page it follows) plus one function that fills the columns from the export frame.
The export frame (built by :mod:`clientfolio.actions.exports`) has one row per customer:
customer_id, email, first_name, last_name, phone (always empty: clientfolio does not store
names or phone numbers -- ingest leaves personal columns out -- and never invents them),
segment_kind, segment, tag, orders, and the scores.

Sources (read when this was written; check them if a tool changes its importer):

- Mailchimp, "Format Guidelines for Your Import File" (mailchimp.com/help/format-guidelines-for-your-import-file):
  only Email Address is required; text fields such as First Name, Last Name; Phone Number;
  a Tags column of comma-separated tags (a tag with a comma must be quoted, so tags here never hold one).
- Klaviyo, "How to upload and segment with consent" (help.klaviyo.com/hc/en-us/articles/360043841811) and
  "How to create and add subscribers to a new list" (.../115005078967): the first column is
  Email (or Email Address / Phone Number); optional consent columns Email Marketing Consent,
  SMS Marketing Consent with the values Subscribed, Unsubscribed, Never subscribed (blank means
  never subscribed).  SMS consent needs a phone number (.../360035428731), so without one the
  SMS column is left blank.
- HubSpot: Email is the contacts' unique key; Lifecycle Stage takes the internal values
  subscriber, lead, marketingqualifiedlead, salesqualifiedlead, opportunity, customer,
  evangelist, other; "Legal basis for processing contact's data" takes Legitimate interest -
  prospect/lead, Legitimate interest - existing customer, Performance of a contract, Freely
  given consent from contact, Not applicable (knowledge.hubspot.com, "Track lawful basis of
  processing in HubSpot").
- Zoho CRM Contacts and Salesforce Contacts (Data Import Wizard): the standard field labels
  First Name, Last Name, Email, Phone, Email Opt Out; both require Last Name for a new contact,
  which clientfolio does not have: the wizard's default value or an update-only import fills it.
- Shopify, customer CSV template (help.shopify.com, "Using CSV files to import and export
  customers"): headers are case-sensitive; Email must be present (the value may be blank);
  Accepts Email Marketing / Accepts SMS Marketing take yes or no; Tags are comma-separated and
  usable in Shopify's customer segment editor (customer_tags CONTAINS '...').
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

HUBSPOT_LIFECYCLE_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
                            "customer", "evangelist", "other")
HUBSPOT_LEGAL_BASES = ("Legitimate interest - prospect/lead", "Legitimate interest - existing customer",
                       "Performance of a contract", "Freely given consent from contact", "Not applicable")
KLAVIYO_CONSENT_VALUES = ("Subscribed", "Unsubscribed", "Never subscribed")
SHOPIFY_YES_NO = ("yes", "no")
SEGMENT_COLUMN = "clientfolio Segment"  # a custom property / field: map it or leave it unmapped
SCORE_COLUMNS = ("clv", "clv_low", "clv_high", "p_alive", "churn_risk", "value_score", "revenue", "orders",
                 "days_since_last")


@dataclass(frozen=True)
class Layout:
    """One tool's import layout."""

    name: str
    title: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    marketing: bool  # a marketing tool: only customers with marketing consent on `channel` are exported
    channel: str
    fill: Callable[[pd.DataFrame], pd.DataFrame]
    notes: tuple[str, ...] = field(default_factory=tuple)
    parquet: bool = False


def _blank(n: int) -> list[str]:
    return [""] * n


def _text(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "")


def _mailchimp(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"Email Address": _text(f["email"]), "First Name": _text(f["first_name"]),
                         "Last Name": _text(f["last_name"]), "Phone Number": _text(f["phone"]), "Tags": f["tag"]})


def _sms_status(f: pd.DataFrame) -> pd.Series:
    """Klaviyo's SMS consent value: only where there is a phone number to attach it to, else blank."""
    has_phone = f["phone"].notna() & (f["phone"].astype(str) != "")
    return f["sms_status"].where(has_phone, "")


def _klaviyo(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"Email": _text(f["email"]), "First Name": _text(f["first_name"]),
                         "Last Name": _text(f["last_name"]), "Phone Number": _text(f["phone"]),
                         "Email Marketing Consent": "Subscribed", "SMS Marketing Consent": _sms_status(f),
                         SEGMENT_COLUMN: f["title"]})


def _hubspot(f: pd.DataFrame) -> pd.DataFrame:
    stage = ["customer" if pd.notna(o) and o > 0 else "subscriber" for o in f["orders"]]
    return pd.DataFrame({"Email": _text(f["email"]), "First Name": _text(f["first_name"]),
                         "Last Name": _text(f["last_name"]), "Phone Number": _text(f["phone"]),
                         "Lifecycle Stage": stage,
                         "Legal basis for processing contact's data": "Freely given consent from contact",
                         SEGMENT_COLUMN: f["title"]})


def _zoho(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"First Name": _text(f["first_name"]), "Last Name": _text(f["last_name"]),
                         "Email": _text(f["email"]), "Phone": _text(f["phone"]), "Email Opt Out": "false",
                         "Tag": f["tag"]})


def _salesforce(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"First Name": _text(f["first_name"]), "Last Name": _text(f["last_name"]),
                         "Email": _text(f["email"]), "Phone": _text(f["phone"]), "Email Opt Out": "false",
                         SEGMENT_COLUMN: f["title"]})


SHOPIFY_COLUMNS = ("First Name", "Last Name", "Email", "Accepts Email Marketing", "Default Address Company",
                   "Default Address Address1", "Default Address Address2", "Default Address City",
                   "Default Address Province Code", "Default Address Country Code", "Default Address Zip",
                   "Default Address Phone", "Phone", "Accepts SMS Marketing", "Tags", "Note", "Tax Exempt")


def _shopify(f: pd.DataFrame) -> pd.DataFrame:
    n = len(f)
    out = {c: _blank(n) for c in SHOPIFY_COLUMNS}
    out.update({"First Name": _text(f["first_name"]).tolist(), "Last Name": _text(f["last_name"]).tolist(),
                "Email": _text(f["email"]).tolist(), "Accepts Email Marketing": ["yes"] * n,
                "Phone": _text(f["phone"]).tolist(), "Tags": f["tag"].tolist()})
    return pd.DataFrame(out, columns=list(SHOPIFY_COLUMNS))


def _generic(f: pd.DataFrame) -> pd.DataFrame:
    cols = ["customer_id", "email", "segment_kind", "segment"] + [c for c in SCORE_COLUMNS if c in f]
    return f[cols].reset_index(drop=True)


_NAMES = "clientfolio holds no names or phone numbers, so those columns are empty"
LAYOUTS: dict[str, Layout] = {
    "mailchimp": Layout("mailchimp", "Mailchimp audience import",
                        ("Email Address", "First Name", "Last Name", "Phone Number", "Tags"), ("Email Address",),
                        True, "email", _mailchimp,
                        (_NAMES, "in Mailchimp's import choose the status Subscribed and map Tags to tags")),
    "klaviyo": Layout("klaviyo", "Klaviyo list import",
                      ("Email", "First Name", "Last Name", "Phone Number", "Email Marketing Consent",
                       "SMS Marketing Consent", SEGMENT_COLUMN), ("Email",), True, "email", _klaviyo,
                      (_NAMES, "SMS Marketing Consent is blank without a phone number (Klaviyo needs one for SMS)",
                       "turn off flows triggered by the list before importing (Klaviyo's advice)")),
    "hubspot": Layout("hubspot", "HubSpot contacts import",
                      ("Email", "First Name", "Last Name", "Phone Number", "Lifecycle Stage",
                       "Legal basis for processing contact's data", SEGMENT_COLUMN), ("Email",), True, "email",
                      _hubspot,
                      (_NAMES, "Lifecycle Stage uses HubSpot's internal values (customer for buyers)",
                       f"map '{SEGMENT_COLUMN}' to a contact property of your own, or leave it unmapped")),
    "zoho": Layout("zoho", "Zoho CRM contacts import",
                   ("First Name", "Last Name", "Email", "Phone", "Email Opt Out", "Tag"), ("Last Name", "Email"),
                   True, "email", _zoho,
                   (_NAMES, "Zoho requires Last Name for a new contact: set a default value for it in the import "
                            "wizard, or import as an update of existing contacts matched on Email")),
    "salesforce": Layout("salesforce", "Salesforce contacts (Data Import Wizard)",
                         ("First Name", "Last Name", "Email", "Phone", "Email Opt Out", SEGMENT_COLUMN),
                         ("Last Name", "Email"), True, "email", _salesforce,
                         (_NAMES, "Salesforce requires Last Name for a new contact: match existing contacts on "
                                  "Email (update only), or fill it before importing",
                          f"map '{SEGMENT_COLUMN}' to a custom field, or add the contacts to a campaign in the "
                          "wizard")),
    "shopify": Layout("shopify", "Shopify customer import", SHOPIFY_COLUMNS, ("Email",), True, "email", _shopify,
                      (_NAMES, "in Shopify's customer segment editor use: customer_tags CONTAINS '<the tag>'",
                       "Shopify replaces the tags of existing customers only if you tick 'Overwrite existing "
                       "customers'")),
    "csv": Layout("csv", "generic CSV", ("customer_id", "email", "segment_kind", "segment") + SCORE_COLUMNS,
                  ("customer_id",), True, "email", _generic),
    "parquet": Layout("parquet", "generic Parquet", ("customer_id", "email", "segment_kind", "segment")
                      + SCORE_COLUMNS, ("customer_id",), True, "email", _generic, parquet=True),
}
TARGETS = tuple(LAYOUTS)
#: Targets that can take a pseudonymised file (analysis and agency sharing, not marketing tools).
PSEUDONYMOUS_TARGETS = ("csv", "parquet")
