"""The classic world's tools: plain Python functions over the state, paired with their JSON-schema
``ToolSpec``s, and the ``World`` that executes a call as a Python interpreter would (a wrong call
raises the interpreter's own ``TypeError``, an unknown name is a ``NameError``)."""

from __future__ import annotations

import datetime as dt
import json
import random
import zlib
from dataclasses import dataclass
from typing import Any, Callable

from tl_lightning.data.synthetic.state import (
    AIRLINES,
    AIRPORTS,
    CONDITIONS,
    CURRENCIES,
    SEAT_CLASSES,
    START_DATE,
    UNITS,
    VENUES,
    WorldState,
    build_state,
)
from tl_lightning.records import ToolCall, ToolSpec


class ToolFailure(Exception):
    """A tool rejected its input; the output text is ``Error: <message>``."""


# ---------------------------------------------------------------- argument checks


def _date(value: Any) -> dt.date:
    """A YYYY-MM-DD string as a date; anything else is a bad value."""
    try:
        if isinstance(value, str) and len(value) == 10:
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise ToolFailure(f"invalid date {value!r}, expected YYYY-MM-DD")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ToolFailure(f"{name} {value!r} is not supported; use one of {', '.join(allowed)}")
    return value


def _int_in(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ToolFailure(f"{name} must be an integer between {low} and {high}, got {value!r}")
    return value


def _city(state: WorldState, city: Any) -> dict[str, Any]:
    if city not in state.weather:
        raise ToolFailure(f"unknown city {city!r}")
    return state.weather[city]


def _paper(state: WorldState, paper_id: Any) -> dict[str, Any]:
    if paper_id not in state.papers:
        raise ToolFailure(f"no paper with id {paper_id!r}")
    return state.papers[paper_id]


def _symbol(state: WorldState, symbol: Any) -> list[float]:
    if symbol not in state.stocks:
        raise ToolFailure(f"unknown ticker symbol {symbol!r}")
    return state.stocks[symbol]


def _temperature(celsius: float, unit: str) -> float:
    return celsius if unit == "celsius" else round(celsius * 9 / 5 + 32, 1)


# ---------------------------------------------------------------- the tools (real signatures:
# required parameters are positional, optional ones have defaults, so a wrong call raises the
# same TypeError a real Python tool would)


def getPaperDetails(state: WorldState, paper_id, include_abstract=False):
    p = dict(_paper(state, paper_id))
    if include_abstract:
        p["abstract"] = f"We study {p['keywords'][0]} and report gains on standard benchmarks."
    return p


def getPapersByKeywords(state: WorldState, query, venue=None, limit=5):
    _int_in("limit", limit, 1, 20)
    if venue is not None:
        _choice("venue", venue, VENUES)
    hits = [p for p in state.papers.values() if any(query.lower() in k for k in p["keywords"])
            and (venue is None or p["venue"] == venue)]
    hits.sort(key=lambda p: (-p["citations"], p["paper_id"]))
    return [{k: p[k] for k in ("paper_id", "title", "venue", "year")} for p in hits[:limit]]


def getPaperCitations(state: WorldState, paper_id, limit=10):
    _int_in("limit", limit, 1, 50)
    p = _paper(state, paper_id)
    citing = sorted(q for q in state.papers if q != paper_id and state.papers[q]["year"] >= p["year"])
    return {"paper_id": paper_id, "citations": p["citations"], "citing_papers": citing[:limit]}


def get_weather(state: WorldState, city, unit="celsius"):
    w = _city(state, city)
    _choice("unit", unit, UNITS)
    return {"city": city, "temperature": _temperature(w["temperature_c"], unit), "unit": unit,
            "condition": w["condition"], "humidity": w["humidity"]}


def get_weather_forecast(state: WorldState, city, days, unit="celsius"):
    w = _city(state, city)
    _int_in("days", days, 1, 7)
    _choice("unit", unit, UNITS)
    rng = random.Random(f"{state.seed}|forecast|{city}")
    out = []
    for d in range(days):
        c = w["temperature_c"] + rng.randint(-4, 4)
        out.append({"date": (START_DATE + dt.timedelta(days=d + 1)).isoformat(),
                    "high": _temperature(c + 3, unit), "low": _temperature(c - 4, unit),
                    "condition": rng.choice(CONDITIONS)})
    return {"city": city, "unit": unit, "forecast": out}


def get_air_quality(state: WorldState, city):
    return {"city": city, "aqi": _city(state, city)["aqi"]}


def search_flights(state: WorldState, origin, destination, date, nonstop=False, max_price=None):
    for code in (origin, destination):
        if code not in AIRPORTS:
            raise ToolFailure(f"unknown airport code {code!r}")
    day = _date(date)
    if max_price is not None and (isinstance(max_price, bool) or not isinstance(max_price, (int, float))):
        raise ToolFailure(f"max_price must be a number, got {max_price!r}")
    rng = random.Random(f"{state.seed}|flights|{origin}|{destination}|{day}")
    found = []
    for _ in range(4):
        flight = {"flight_id": f"{rng.choice(AIRLINES)}{rng.randint(100, 999)}", "origin": origin,
                  "destination": destination, "date": day.isoformat(),
                  "departure": f"{rng.randint(6, 22):02d}:{rng.choice((0, 15, 30, 45)):02d}",
                  "stops": rng.choice((0, 0, 1, 2)), "price": rng.randint(180, 1400)}
        state.flights[flight["flight_id"]] = flight
        found.append(flight)
    found = [f for f in found if (not nonstop or f["stops"] == 0) and (max_price is None or f["price"] <= max_price)]
    return sorted(found, key=lambda f: (f["price"], f["flight_id"]))


def book_flight(state: WorldState, flight_id, passengers=1, seat_class="economy"):
    if flight_id not in state.flights:
        raise ToolFailure(f"unknown flight {flight_id!r}; search for flights first")
    _int_in("passengers", passengers, 1, 9)
    _choice("seat_class", seat_class, SEAT_CLASSES)
    f = state.flights[flight_id]
    factor = {"economy": 1, "premium": 1.6, "business": 3}[seat_class]
    return {"confirmation": f"BK-{flight_id}-{passengers}", "flight_id": flight_id,
            "passengers": passengers, "seat_class": seat_class,
            "total_price": round(f["price"] * factor * passengers, 2)}


def get_flight_status(state: WorldState, flight_id):
    if flight_id not in state.flights:
        raise ToolFailure(f"unknown flight {flight_id!r}")
    return {"flight_id": flight_id, "status": "on time", "departure": state.flights[flight_id]["departure"]}


def create_event(state: WorldState, title, date, duration_hours, attendees=None, all_day=False):
    day = _date(date)
    if isinstance(duration_hours, bool) or not isinstance(duration_hours, (int, float)) or not 0 < duration_hours <= 24:
        raise ToolFailure(f"duration_hours must be a number in (0, 24], got {duration_hours!r}")
    if attendees is not None and not (isinstance(attendees, list) and all(isinstance(a, str) for a in attendees)):
        raise ToolFailure(f"attendees must be a list of email addresses, got {attendees!r}")
    return {"event_id": f"E{zlib.crc32(f'{title}|{day}'.encode()) % 900 + 100}", "title": title,
            "date": day.isoformat(), "duration_hours": duration_hours,
            "attendees": attendees or [], "all_day": bool(all_day)}


def list_events(state: WorldState, date):
    day = _date(date).isoformat()
    return {"date": day, "events": state.events.get(day, [])}


def get_stock_price(state: WorldState, symbol):
    return {"symbol": symbol, "price": _symbol(state, symbol)[-1], "currency": "USD"}


def get_stock_history(state: WorldState, symbol, days):
    closes = _symbol(state, symbol)
    _int_in("days", days, 1, 30)
    return {"symbol": symbol, "closes": closes[-days:]}


def convert_currency(state: WorldState, amount, from_currency, to_currency):
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise ToolFailure(f"amount must be a number, got {amount!r}")
    for c in (from_currency, to_currency):
        _choice("currency", c, tuple(CURRENCIES))
    value = amount / CURRENCIES[from_currency] * CURRENCIES[to_currency]
    return {"amount": amount, "from": from_currency, "to": to_currency, "result": round(value, 2)}


# ---------------------------------------------------------------- tool specs


def _spec(name: str, description: str, required: dict[str, dict], optional: dict[str, dict] | None = None) -> ToolSpec:
    return ToolSpec(name=name, description=description, parameters={
        "type": "object", "properties": {**required, **(optional or {})}, "required": list(required)})


def _p(type_: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "description": description, **extra}


DATE = _p("string", "Date in YYYY-MM-DD format.")
UNIT = _p("string", "Temperature unit.", enum=list(UNITS), default="celsius")

SPECS: dict[str, tuple[str, ToolSpec]] = {spec.name: (domain, spec) for domain, spec in [
    ("papers", _spec("getPaperDetails", "Get the details of a paper by its id.",
                     {"paper_id": _p("string", "The paper id, e.g. P1234.")},
                     {"include_abstract": _p("boolean", "Also return the abstract.", default=False)})),
    ("papers", _spec("getPapersByKeywords", "Search papers by keywords, most cited first.",
                     {"query": _p("string", "Keywords to search for.")},
                     {"venue": _p("string", "Only papers from this venue.", enum=list(VENUES)),
                      "limit": _p("integer", "Maximum number of papers (1-20).", default=5)})),
    ("papers", _spec("getPaperCitations", "List the papers citing a paper.",
                     {"paper_id": _p("string", "The paper id.")},
                     {"limit": _p("integer", "Maximum number of citing papers (1-50).", default=10)})),
    ("weather", _spec("get_weather", "Get the current weather in a city.",
                      {"city": _p("string", "City name, e.g. Paris.")}, {"unit": UNIT})),
    ("weather", _spec("get_weather_forecast", "Get the daily weather forecast for a city.",
                      {"city": _p("string", "City name."), "days": _p("integer", "Number of days (1-7).")},
                      {"unit": UNIT})),
    ("weather", _spec("get_air_quality", "Get the air quality index of a city.",
                      {"city": _p("string", "City name.")})),
    ("flights", _spec("search_flights", "Search flights between two airports on a date, cheapest first.",
                      {"origin": _p("string", "IATA code of the departure airport."),
                       "destination": _p("string", "IATA code of the arrival airport."), "date": DATE},
                      {"nonstop": _p("boolean", "Only nonstop flights.", default=False),
                       "max_price": _p("number", "Maximum price in USD.")})),
    ("flights", _spec("book_flight", "Book a flight found by search_flights.",
                      {"flight_id": _p("string", "The flight id, e.g. AF123.")},
                      {"passengers": _p("integer", "Number of passengers (1-9).", default=1),
                       "seat_class": _p("string", "Seat class.", enum=list(SEAT_CLASSES), default="economy")})),
    ("flights", _spec("get_flight_status", "Get the status of a flight.",
                      {"flight_id": _p("string", "The flight id.")})),
    ("calendar", _spec("create_event", "Create a calendar event.",
                       {"title": _p("string", "Event title."), "date": DATE,
                        "duration_hours": _p("number", "Duration in hours.")},
                       {"attendees": _p("array", "Email addresses to invite.", items={"type": "string"}),
                        "all_day": _p("boolean", "An all-day event.", default=False)})),
    ("calendar", _spec("list_events", "List the calendar events on a date.", {"date": DATE})),
    ("finance", _spec("get_stock_price", "Get the latest price of a stock in USD.",
                      {"symbol": _p("string", "Ticker symbol, e.g. AAPL.")})),
    ("finance", _spec("get_stock_history", "Get the last daily closing prices of a stock.",
                      {"symbol": _p("string", "Ticker symbol."), "days": _p("integer", "Number of days (1-30).")})),
    ("finance", _spec("convert_currency", "Convert an amount between currencies.",
                      {"amount": _p("number", "The amount."),
                       "from_currency": _p("string", "Source currency.", enum=list(CURRENCIES)),
                       "to_currency": _p("string", "Target currency.", enum=list(CURRENCIES))})),
]}

FUNCTIONS: dict[str, Callable[..., Any]] = {f.__name__: f for f in (
    getPaperDetails, getPapersByKeywords, getPaperCitations, get_weather, get_weather_forecast,
    get_air_quality, search_flights, book_flight, get_flight_status, create_event, list_events,
    get_stock_price, get_stock_history, convert_currency)}


# ---------------------------------------------------------------- the world


@dataclass
class World:
    """The tools, their specs and the state they act on."""

    state: WorldState

    def domain_tools(self, domain: str) -> list[ToolSpec]:
        return [spec for d, spec in SPECS.values() if d == domain]

    def execute(self, call: ToolCall, available: tuple[str, ...]) -> tuple[str, bool]:
        """Run ``call`` as a Python tool would; return ``(output text, failed)``. A tool outside
        ``available`` is undefined, exactly as calling an unknown Python name."""
        if call.name not in available or call.name not in FUNCTIONS:
            return f"NameError: name '{call.name}' is not defined", True
        try:
            result = FUNCTIONS[call.name](self.state, **call.arguments)
        except TypeError as e:  # wrong arguments: the interpreter's own message
            return f"TypeError: {e}", True
        except ToolFailure as e:
            return f"Error: {e}", True
        return json.dumps(result, ensure_ascii=False), False


def make_world(seed: int = 0) -> World:
    """The world for ``seed``: same seed, same facts and outputs."""
    return World(state=build_state(seed))
