"""The words the world is built from: resources (one per domain), naming styles, and the values
queries mention (people, keywords, titles, notes, dates).

Every value a gold call needs is written into the query verbatim (an id, a quoted keyword, a
person's name, an ISO date, a number in digits), so a model fills arguments by copying, never by
world knowledge. No word here contains "error" or any other MAE error phrase: successful tool
outputs are built from these words and must never read as errors.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """What one domain manages.

    - ``singular`` / ``plural``: the resource noun (``invoice`` / ``invoices``), one word;
    - ``namespace``: the domain name and the head of its dotted tool names (``billing``);
    - ``id_prefix``: ids look like ``INV-4821``;
    - ``owner``: the person a resource belongs to (``customer``): ``list_invoices_by_customer``;
    - ``statuses``: the three values of its status enum;
    - ``measure`` / ``measure_phrase``: its numeric field for ``create`` and how a query says it
      (``{x}`` is the number, written in digits).
    """

    singular: str
    plural: str
    namespace: str
    id_prefix: str
    owner: str
    statuses: tuple[str, str, str]
    measure: str
    measure_phrase: str


def _r(singular: str, plural: str, namespace: str, prefix: str, owner: str, statuses: str,
       measure: str, phrase: str) -> Resource:
    a, b, c = statuses.split()
    return Resource(singular, plural, namespace, prefix, owner, (a, b, c), measure, phrase)


RESOURCES: tuple[Resource, ...] = (
    _r("invoice", "invoices", "billing", "INV", "customer", "paid unpaid overdue", "amount", "an amount of {x}"),
    _r("parcel", "parcels", "shipping", "PCL", "recipient", "in_transit delivered returned",
       "weight_kg", "a weight of {x} kg"),
    _r("recipe", "recipes", "kitchen", "RCP", "author", "draft published archived",
       "prep_minutes", "{x} minutes of prep"),
    _r("playlist", "playlists", "music", "PLS", "listener", "public private collaborative",
       "duration_minutes", "a length of {x} minutes"),
    _r("ticket", "tickets", "support", "TKT", "requester", "open pending closed", "hours_spent", "{x} hours spent"),
    _r("sensor", "sensors", "telemetry", "SNS", "technician", "online offline maintenance",
       "threshold", "a threshold of {x}"),
    _r("order", "orders", "shop", "ORD", "buyer", "placed shipped refunded", "total", "a total of {x}"),
    _r("booking", "bookings", "hotel", "BKG", "guest", "confirmed waitlisted checked_in",
       "nightly_rate", "a nightly rate of {x}"),
    _r("appointment", "appointments", "clinic", "APT", "patient", "scheduled completed missed",
       "duration_minutes", "{x} minutes long"),
    _r("course", "courses", "learning", "CRS", "instructor", "active full closed", "fee", "a fee of {x}"),
    _r("loan", "loans", "library", "LON", "member", "active returned late", "late_fee", "a late fee of {x}"),
    _r("vehicle", "vehicles", "fleet", "VEH", "driver", "available in_service retired",
       "mileage_km", "{x} km on the clock"),
    _r("contract", "contracts", "legal", "CTR", "client", "draft signed expired", "value", "a value of {x}"),
    _r("expense", "expenses", "finance", "EXP", "employee", "submitted approved rejected",
       "amount", "an amount of {x}"),
    _r("campaign", "campaigns", "marketing", "CMP", "manager", "planned running ended", "budget", "a budget of {x}"),
    _r("lead", "leads", "sales", "LED", "agent", "new contacted qualified", "deal_size", "a deal size of {x}"),
    _r("container", "containers", "freight", "CNT", "shipper", "loading at_sea arrived",
       "weight_tons", "a weight of {x} tons"),
    _r("reservation", "reservations", "dining", "RSV", "diner", "booked seated no_show",
       "party_size", "a party of {x}"),
    _r("prescription", "prescriptions", "pharmacy", "PRX", "doctor", "active filled expired",
       "dosage_mg", "a dosage of {x} mg"),
    _r("build", "builds", "ci", "BLD", "developer", "queued passing failing",
       "duration_seconds", "a duration of {x} seconds"),
    _r("deployment", "deployments", "cloud", "DPL", "engineer", "pending live rolled_back",
       "cpu_cores", "{x} CPU cores"),
    _r("incident", "incidents", "ops", "INC", "responder", "open mitigated resolved",
       "impact_score", "an impact score of {x}"),
    _r("article", "articles", "newsroom", "ART", "editor", "draft in_review published", "word_count", "{x} words"),
    _r("episode", "episodes", "podcasts", "EPS", "host", "recorded edited released",
       "length_minutes", "{x} minutes long"),
    _r("album", "albums", "photos", "ALB", "photographer", "private shared archived", "size_mb", "a size of {x} MB"),
    _r("item", "items", "inventory", "ITM", "supplier", "in_stock low_stock discontinued",
       "unit_price", "a unit price of {x}"),
    _r("claim", "claims", "insurance", "CLM", "policyholder", "filed approved denied", "payout", "a payout of {x}"),
    _r("subscription", "subscriptions", "membership", "SUB", "subscriber", "trial active paused",
       "monthly_fee", "a monthly fee of {x}"),
    _r("task", "tasks", "projects", "TSK", "assignee", "todo doing done", "estimate_hours", "an estimate of {x} hours"),
    _r("application", "applications", "hiring", "APP", "candidate", "received interviewing offered",
       "salary", "a salary of {x}"),
    _r("donation", "donations", "charity", "DON", "donor", "pledged received refunded", "amount", "an amount of {x}"),
    _r("event", "events", "venues", "EVT", "organizer", "announced sold_out cancelled",
       "ticket_price", "a ticket price of {x}"),
    _r("trip", "trips", "travel", "TRP", "traveler", "planned ongoing completed", "budget", "a budget of {x}"),
    _r("rental", "rentals", "carhire", "RNT", "renter", "reserved active returned",
       "daily_rate", "a daily rate of {x}"),
    _r("pet", "pets", "shelter", "PET", "caretaker", "available adopted fostered", "weight_kg", "a weight of {x} kg"),
    _r("plot", "plots", "garden", "PLT", "gardener", "planted growing harvested", "area_m2", "an area of {x} m2"),
    _r("survey", "surveys", "research", "SRV", "researcher", "open closed analyzed",
       "response_rate", "a response rate of {x}"),
    _r("experiment", "experiments", "lab", "EXM", "scientist", "running finished aborted",
       "accuracy", "an accuracy of {x}"),
    _r("room", "rooms", "facilities", "ROM", "organizer", "free occupied cleaning", "capacity", "a capacity of {x}"),
    _r("laptop", "laptops", "devices", "LAP", "employee", "assigned spare in_repair",
       "purchase_price", "a purchase price of {x}"),
    _r("quote", "quotes", "procurement", "QTE", "vendor", "requested received accepted", "amount", "an amount of {x}"),
    _r("workout", "workouts", "fitness", "WKT", "athlete", "planned done skipped", "calories", "{x} calories"),
    _r("delivery", "deliveries", "groceries", "DLV", "shopper", "packing on_the_way delivered", "tip", "a tip of {x}"),
    _r("bug", "bugs", "tracker", "BUG", "reporter", "new triaged fixed", "severity_score", "a severity score of {x}"),
    _r("permit", "permits", "civic", "PRM", "applicant", "submitted granted refused", "fee", "a fee of {x}"),
    _r("listing", "listings", "realestate", "LST", "agent", "for_sale under_offer sold", "price", "a price of {x}"),
    _r("shift", "shifts", "staffing", "SHF", "worker", "open filled swapped", "hours", "{x} hours"),
    _r("voucher", "vouchers", "promotions", "VCH", "holder", "issued redeemed expired",
       "discount_percent", "a {x} percent discount"),
    _r("video", "videos", "streaming", "VID", "creator", "processing public unlisted",
       "length_seconds", "{x} seconds long"),
    _r("payslip", "payslips", "payroll", "PAY", "employee", "draft issued corrected", "net_pay", "a net pay of {x}"),
    _r("lesson", "lessons", "tutoring", "LSN", "tutor", "booked taught cancelled", "rate", "a rate of {x}"),
    _r("warranty", "warranties", "aftersales", "WAR", "owner", "active claimed lapsed",
       "coverage", "a coverage of {x}"),
)

# ---------------------------------------------------------------- naming styles

STYLES = ("snake", "camel", "pascal", "dotted")
"""``get_invoice_status``, ``getInvoiceStatus``, ``GetInvoiceStatus``, ``billing.invoices.get_status``."""


def styled(words: list[str], style: str) -> str:
    """``words`` (lower-case, may contain ``_``) joined in ``style``; ``dotted`` joins with ``_``
    (the dotted namespace is added by the caller)."""
    parts = [p for w in words for p in w.split("_") if p]
    if style in ("snake", "dotted"):
        return "_".join(parts)
    camel = "".join(p.capitalize() for p in parts)
    return camel[0].lower() + camel[1:] if style == "camel" else camel


def parameter_name(words: list[str], style: str) -> str:
    """A parameter name in the domain's style: camelCase for camel and Pascal domains (``invoiceId``),
    snake_case otherwise (``invoice_id``)."""
    return styled(words, "camel" if style in ("camel", "pascal") else "snake")


# ---------------------------------------------------------------- values queries mention

FIRST_NAMES = ("Ana", "Bruno", "Chen", "Dara", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko",
               "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera")
LAST_NAMES = ("Silva", "Novak", "Okafor", "Tanaka", "Garcia", "Kumar", "Haddad", "Kim", "Moreau", "Jensen",
              "Rossi", "Mensah", "Ivanova", "Lopez", "Brennan", "Sato", "Weber", "Costa", "Adeyemi", "Larsen")
KEYWORDS = ("spring sale", "Project Atlas", "office move", "north region", "late shipment", "VIP",
            "website redesign", "onboarding", "budget review", "Berlin", "Lisbon", "Osaka", "quarterly",
            "renewal", "pilot", "night shift", "holiday", "green energy", "partner program", "audit",
            "customer feedback", "warehouse 7", "blue team", "launch week", "migration")
TITLES = ("Website redesign", "Spring launch", "Team offsite", "Q3 review", "Harbor project", "Client onboarding",
          "Annual audit", "Summer campaign", "Data migration", "Kitchen refit", "Board meeting", "Mobile app beta",
          "Charity gala", "Warehouse move", "Training week", "Partner summit")
NOTES = ("checked by phone", "waiting for the signature", "customer confirmed", "see email from Monday",
         "second reminder sent", "approved by finance", "needs a manager review", "moved to next week")
REASONS = ("duplicate entry", "customer request", "wrong address", "no longer needed", "budget cut",
           "date changed", "ordered by mistake", "plans changed")
TAGS = ("urgent", "internal", "vip", "follow_up", "q3", "remote", "priority", "archive", "billing", "travel")
PRIORITIES = ("low", "normal", "high")
SORT_ORDERS = ("relevance", "newest", "oldest")

START_DATE = dt.date(2024, 1, 1)
DATE_RANGE_DAYS = 730
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")


def article(noun: str) -> str:
    """``"an invoice"``, ``"a parcel"``."""
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def date(rng: random.Random) -> str:
    """A date in 2024-2025 as ``YYYY-MM-DD`` (the format every date parameter asks for)."""
    return (START_DATE + dt.timedelta(days=rng.randrange(DATE_RANGE_DAYS))).isoformat()


def resource_id(resource: Resource, rng: random.Random) -> str:
    return f"{resource.id_prefix}-{rng.randint(1000, 9999)}"


def measure_value(rng: random.Random) -> float | int:
    """A number for a ``measure`` argument: an integer or a number with one decimal."""
    return rng.randint(2, 900) if rng.random() < 0.5 else round(rng.uniform(1, 900), 1)
