"""A built-in, seeded tool-use world: the default data source, so nothing needs downloading.

The world has five domains (papers, weather, flights, calendar, finance). Each tool is a plain
Python function over a small in-memory state built from the seed, paired with its JSON-schema
``ToolSpec``. Tool names deliberately share prefixes (``getPaperDetails`` / ``getPapersByKeywords``,
``get_weather`` / ``get_weather_forecast``, ``get_stock_price`` / ``get_stock_history``) so PKT's
key tokens matter, and the parameters cover string, integer, number, boolean, enum and array.

Trajectories are produced by *executing* calls, so every tool output is real. With probability
``error_rate`` a call is first made wrong in one of four ways, executed, and then corrected:

- ``missing_argument``: a required argument is left out; Python raises
  ``TypeError: f() missing 1 required positional argument: 'x'``;
- ``unexpected_argument``: a required argument gets a plausible wrong name (``city`` ->
  ``location``); Python raises ``TypeError: f() got an unexpected keyword argument 'location'``;
- ``unknown_function``: a near-miss tool name; the output is ``NameError: name 'f' is not defined``;
- ``bad_value``: a value the tool rejects (``15/03/2024`` for a date, ``kelvin`` for a unit);
  the output is ``Error: invalid date ...``.

All four read as errors under the authors' MAE patterns, so MAE drops exactly those turns.
Successful outputs are JSON and never contain the word "error".

``generate_trajectories(n, seed)`` gives multi-turn SFT data; ``generate_prompts(n, seed)`` gives
single-turn prompts ending with the gold assistant call (for the ``rl`` and ``eval`` stages).
Everything is deterministic given the seed.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory, validate_trajectory

ERROR_KINDS = ("missing_argument", "unexpected_argument", "unknown_function", "bad_value")

CITIES = ("Paris", "Tokyo", "Berlin", "Lima", "Nairobi", "Toronto", "Sydney", "Madrid", "Seoul", "Cairo")
CONDITIONS = ("sunny", "cloudy", "rainy", "windy", "foggy", "snowy")
UNITS = ("celsius", "fahrenheit")
TOPICS = ("tool learning", "graph neural networks", "protein folding", "speech recognition",
          "reinforcement learning", "code generation", "machine translation", "image segmentation")
VENUES = ("ICLR", "NeurIPS", "ICML", "ACL", "EMNLP", "CVPR")
TITLE_HEADS = ("Scaling", "Rethinking", "Towards Robust", "Efficient", "A Survey of", "Learning Better")
TITLE_TAILS = ("Transformers", "Small Data", "Feedback", "Search")
SURNAMES = ("Chen", "Garcia", "Okafor", "Novak", "Tanaka", "Silva", "Kumar", "Müller", "Haddad", "Kim")
AIRPORTS = ("JFK", "LHR", "CDG", "HND", "FRA", "SYD", "GRU", "YYZ")
AIRLINES = ("AF", "BA", "LH", "NH", "QF", "AC")
SEAT_CLASSES = ("economy", "premium", "business")
STOCKS = {"AAPL": 189.5, "MSFT": 411.2, "NVDA": 875.3, "TSLA": 171.1, "AMZN": 178.4, "SAP": 182.9}
CURRENCIES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.4, "CHF": 0.9}
MEETINGS = ("Design review", "Team sync", "Budget planning", "Lunch with Ana", "Quarterly demo",
            "Dentist appointment", "Hiring committee")
PEOPLE = ("ana@example.com", "bo@example.com", "chen@example.com", "dara@example.com", "eli@example.com")
START_DATE = dt.date(2024, 5, 1)
# Wrong-but-plausible argument names a model hallucinates (for ``unexpected_argument``).
ARGUMENT_SYNONYMS = {"city": "location", "paper_id": "id", "query": "keywords", "symbol": "ticker",
                     "date": "day", "title": "name", "origin": "from_airport", "flight_id": "flight",
                     "amount": "value", "destination": "to_airport"}


class ToolFailure(Exception):
    """A tool rejected its input; the output text is ``Error: <message>``."""


# ---------------------------------------------------------------- the state the tools act on


@dataclass
class WorldState:
    """The in-memory facts the mock tools read (and, for calendar and bookings, write)."""

    weather: dict[str, dict[str, Any]]
    papers: dict[str, dict[str, Any]]
    stocks: dict[str, list[float]]  # symbol -> closing prices, oldest first; last = current
    events: dict[str, list[dict[str, Any]]]  # ISO date -> events
    seed: int
    flights: dict[str, dict[str, Any]] = field(default_factory=dict)  # filled by searches


def _build_state(seed: int) -> WorldState:
    rng = random.Random(seed)
    weather = {c: {"temperature_c": rng.randint(-5, 34), "condition": rng.choice(CONDITIONS),
                   "humidity": rng.randint(20, 95), "aqi": rng.randint(10, 180)} for c in CITIES}
    papers = {}
    for topic in TOPICS:
        for _ in range(4):
            pid = f"P{rng.randint(1000, 9999)}"
            while pid in papers:
                pid = f"P{rng.randint(1000, 9999)}"
            papers[pid] = {
                "paper_id": pid,
                "title": f"{rng.choice(TITLE_HEADS)} {topic.title()} with {rng.choice(TITLE_TAILS)}",
                "authors": rng.sample(SURNAMES, 2), "venue": rng.choice(VENUES),
                "year": rng.randint(2018, 2024), "keywords": [topic], "citations": rng.randint(0, 900)}
    stocks = {}
    for sym, price in STOCKS.items():
        closes = [price]
        for _ in range(29):
            closes.append(round(closes[-1] * (1 + rng.uniform(-0.03, 0.03)), 2))
        stocks[sym] = closes[::-1]
    events: dict[str, list[dict[str, Any]]] = {}
    for k in range(20):
        day = (START_DATE + dt.timedelta(days=rng.randint(0, 29))).isoformat()
        events.setdefault(day, []).append({"event_id": f"E{k:03d}", "title": rng.choice(MEETINGS),
                                           "start": f"{rng.randint(8, 17):02d}:00"})
    return WorldState(weather=weather, papers=papers, stocks=stocks, events=events, seed=seed)


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
    return World(state=_build_state(seed))


# ---------------------------------------------------------------- tasks: a query and its calls


@dataclass(frozen=True)
class Step:
    """One assistant call turn: the calls (several = parallel) made together."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class Plan:
    """A user request, the correct call steps (later steps may use earlier outputs) and the
    final answer text. ``outputs[i]`` are the outputs of executing ``steps[i]``'s calls."""

    domain: str
    query: str
    steps: tuple[Step, ...]
    outputs: tuple[tuple[str, ...], ...]
    answer: str


def _day(rng: random.Random) -> str:
    return (START_DATE + dt.timedelta(days=rng.randint(0, 29))).isoformat()


class _Planner:
    """Builds plans by executing the gold calls against the world (so step 2 can use step 1's
    real output)."""

    def __init__(self, world: World, domain: str) -> None:
        self.world, self.domain = world, domain
        self.steps: list[Step] = []
        self.outputs: list[tuple[str, ...]] = []

    def call(self, *calls: ToolCall) -> list[Any]:
        outs = []
        for c in calls:
            text, failed = self.world.execute(c, tuple(FUNCTIONS))
            if failed:
                raise RuntimeError(f"a gold call of the synthetic world failed: {c} -> {text}")
            outs.append(text)
        self.steps.append(Step(tuple(calls)))
        self.outputs.append(tuple(outs))
        return [json.loads(t) for t in outs]

    def plan(self, query: str, answer: str) -> Plan:
        return Plan(self.domain, query, tuple(self.steps), tuple(self.outputs), answer)


def _papers_search(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "papers")
    topic, venue, limit = rng.choice(TOPICS), rng.choice(VENUES), rng.randint(1, 3)
    [hits] = pl.call(ToolCall("getPapersByKeywords", {"query": topic, "venue": venue, "limit": limit}))
    query = rng.choice((f"Find {limit} papers about {topic} published at {venue}.",
                        f"Which {venue} papers on {topic} are cited most? Show me up to {limit}."))
    titles = "; ".join(h["title"] for h in hits) or f"none - there are no {venue} papers on {topic}"
    return pl.plan(query, f"Here is what I found: {titles}.")


def _papers_details(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "papers")
    pid = rng.choice(sorted(world.state.papers))
    abstract = rng.random() < 0.5
    args: dict[str, Any] = {"paper_id": pid, **({"include_abstract": True} if abstract else {})}
    [p] = pl.call(ToolCall("getPaperDetails", args))
    query = f"Give me the details of paper {pid}" + (", including its abstract." if abstract else ".")
    return pl.plan(query, f"{pid} is \"{p['title']}\" by {' and '.join(p['authors'])} ({p['venue']} {p['year']}), "
                          f"cited {p['citations']} times.")


def _papers_search_then_details(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "papers")
    topic = rng.choice(TOPICS)
    [hits] = pl.call(ToolCall("getPapersByKeywords", {"query": topic, "limit": 1}))
    [p] = pl.call(ToolCall("getPaperDetails", {"paper_id": hits[0]["paper_id"]}))
    query = rng.choice((f"Who wrote the most cited paper on {topic}?",
                        f"Find the top paper about {topic} and tell me its authors."))
    return pl.plan(query, f"The most cited paper on {topic} is \"{p['title']}\" by {' and '.join(p['authors'])}.")


def _weather_now(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "weather")
    city, unit = rng.choice(CITIES), rng.choice(UNITS)
    args: dict[str, Any] = {"city": city, **({"unit": unit} if unit == "fahrenheit" else {})}
    [w] = pl.call(ToolCall("get_weather", args))
    suffix = " in Fahrenheit" if unit == "fahrenheit" else ""
    query = rng.choice((f"What's the weather like in {city} right now{suffix}?",
                        f"How warm is it in {city}{suffix}?"))
    return pl.plan(query, f"It is {w['temperature']} degrees {w['unit']} and {w['condition']} in {city}.")


def _weather_two_cities(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "weather")
    a, b = rng.sample(CITIES, 2)
    wa, wb = pl.call(ToolCall("get_weather", {"city": a}), ToolCall("get_weather", {"city": b}))
    warmer = a if wa["temperature"] >= wb["temperature"] else b
    return pl.plan(f"Is it warmer in {a} or in {b} today?",
                   f"{a}: {wa['temperature']} C, {b}: {wb['temperature']} C, so {warmer} is warmer.")


def _weather_forecast(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "weather")
    city, days = rng.choice(CITIES), rng.randint(2, 5)
    [f] = pl.call(ToolCall("get_weather_forecast", {"city": city, "days": days}))
    highs = ", ".join(str(d["high"]) for d in f["forecast"])
    return pl.plan(rng.choice((f"What's the forecast for {city} for the next {days} days?",
                               f"Will it rain in {city} in the coming {days} days?")),
                   f"Daily highs in {city}: {highs} (celsius).")


def _flights_search(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "flights")
    o, d = rng.sample(AIRPORTS, 2)
    day = _day(rng)
    nonstop = rng.random() < 0.5
    args: dict[str, Any] = {"origin": o, "destination": d, "date": day, **({"nonstop": True} if nonstop else {})}
    [found] = pl.call(ToolCall("search_flights", args))
    kind = "nonstop flights" if nonstop else "flights"
    best = f"the cheapest is {found[0]['flight_id']} at {found[0]['price']} USD" if found else "there are none"
    return pl.plan(f"Find {kind} from {o} to {d} on {day}.", f"I found {len(found)} {kind}; {best}.")


def _flights_search_book(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "flights")
    o, d = rng.sample(AIRPORTS, 2)
    day, n, seat = _day(rng), rng.randint(1, 4), rng.choice(SEAT_CLASSES)
    [found] = pl.call(ToolCall("search_flights", {"origin": o, "destination": d, "date": day}))
    [b] = pl.call(ToolCall("book_flight", {"flight_id": found[0]["flight_id"], "passengers": n, "seat_class": seat}))
    return pl.plan(f"Book the cheapest flight from {o} to {d} on {day} for {n} passenger{'s' * (n > 1)} in {seat}.",
                   f"Booked {b['flight_id']} ({b['confirmation']}), total {b['total_price']} USD.")


def _calendar_create(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "calendar")
    title, day = rng.choice(MEETINGS), _day(rng)
    hours = rng.choice((0.5, 1, 1.5, 2))
    people = sorted(rng.sample(PEOPLE, rng.randint(1, 3)))
    [e] = pl.call(ToolCall("create_event", {"title": title, "date": day, "duration_hours": hours,
                                            "attendees": people}))
    query = f"Schedule \"{title}\" on {day} for {hours} hour{'s' * (hours != 1)} and invite {', '.join(people)}."
    return pl.plan(query, f"Created {e['event_id']}: {title} on {day}, invitations sent.")


def _calendar_list(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "calendar")
    day = rng.choice(sorted(world.state.events)) if rng.random() < 0.8 else _day(rng)
    [r] = pl.call(ToolCall("list_events", {"date": day}))
    listed = ", ".join(f"{e['title']} at {e['start']}" for e in r["events"]) or "nothing"
    return pl.plan(rng.choice((f"What's on my calendar on {day}?", f"Do I have meetings on {day}?")),
                   f"On {day} you have: {listed}.")


def _finance_price(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "finance")
    sym = rng.choice(sorted(STOCKS))
    [p] = pl.call(ToolCall("get_stock_price", {"symbol": sym}))
    return pl.plan(rng.choice((f"What's the current price of {sym}?", f"How much does a {sym} share cost?")),
                   f"{sym} trades at {p['price']} USD.")


def _finance_price_convert(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "finance")
    sym, cur = rng.choice(sorted(STOCKS)), rng.choice(("EUR", "GBP", "JPY", "CHF"))
    [p] = pl.call(ToolCall("get_stock_price", {"symbol": sym}))
    [c] = pl.call(ToolCall("convert_currency", {"amount": p["price"], "from_currency": "USD", "to_currency": cur}))
    return pl.plan(f"How much is one {sym} share in {cur}?", f"One {sym} share is {c['result']} {cur}.")


def _finance_history(world: World, rng: random.Random) -> Plan:
    pl = _Planner(world, "finance")
    sym, days = rng.choice(sorted(STOCKS)), rng.randint(3, 10)
    [h] = pl.call(ToolCall("get_stock_history", {"symbol": sym, "days": days}))
    return pl.plan(f"Show me the last {days} closing prices of {sym}.",
                   f"{sym} closed at {', '.join(map(str, h['closes']))}.")


TASKS: tuple[Callable[[World, random.Random], Plan], ...] = (
    _papers_search, _papers_details, _papers_search_then_details, _weather_now, _weather_two_cities,
    _weather_forecast, _flights_search, _flights_search_book, _calendar_create, _calendar_list,
    _finance_price, _finance_price_convert, _finance_history)


# ---------------------------------------------------------------- wrong calls


def _near_miss_name(name: str) -> str:
    """A tool name a model plausibly invents (``getPaperDetails`` -> ``getPaperDetail``)."""
    return name[:-1] if name.endswith("s") else name + "s"


def _bad_values(spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """For each argument a value the tool rejects (only arguments with a known bad value)."""
    bad: dict[str, Any] = {}
    for k, v in args.items():
        if k == "date":
            y, m, d = v.split("-")
            bad[k] = f"{d}/{m}/{y}"
        elif k == "unit":
            bad[k] = "kelvin"
        elif k in ("limit", "days", "passengers"):
            bad[k] = 0
        elif k == "seat_class":
            bad[k] = "first"
        elif k in ("from_currency", "to_currency"):
            bad[k] = "euro"
        elif k == "symbol":
            bad[k] = v.lower() + " inc"
        elif k == "city":
            bad[k] = v.upper()[:3]
        elif k == "paper_id":
            bad[k] = v[1:]
    return bad


def _wrong_call(call: ToolCall, kind: str, rng: random.Random) -> ToolCall | None:
    """``call`` made wrong in the way ``kind`` names, or None when that kind does not apply."""
    spec = SPECS[call.name][1]
    if kind == "unknown_function":
        return ToolCall(_near_miss_name(call.name), dict(call.arguments))
    required = [k for k in spec.required if k in call.arguments]
    if kind == "missing_argument" and required:
        drop = rng.choice(required)
        return ToolCall(call.name, {k: v for k, v in call.arguments.items() if k != drop})
    if kind == "unexpected_argument":
        renamable = [k for k in required if k in ARGUMENT_SYNONYMS]
        if renamable:
            old = rng.choice(renamable)
            return ToolCall(call.name, {(ARGUMENT_SYNONYMS[old] if k == old else k): v
                                        for k, v in call.arguments.items()})
    if kind == "bad_value":
        bad = _bad_values(spec, call.arguments)
        if bad:
            key = rng.choice(sorted(bad))
            return ToolCall(call.name, {**call.arguments, key: bad[key]})
    return None


# ---------------------------------------------------------------- trajectories and prompts


def _tool_set(world: World, domain: str, rng: random.Random) -> tuple[ToolSpec, ...]:
    """The domain's tools plus one or two distractors from other domains, in random order."""
    own = world.domain_tools(domain)
    others = [s for d, s in SPECS.values() if d != domain]
    tools = own + rng.sample(others, rng.randint(1, 2))
    rng.shuffle(tools)
    return tuple(tools)


def _optional_default_alternatives(call: ToolCall, spec: ToolSpec) -> tuple[tuple[ToolCall, ...], ...]:
    """Gold calls that also pass an optional argument explicitly at its default (or omit one given
    at its default) are equally correct."""
    alts = []
    for k, schema in spec.properties.items():
        if k in spec.required or "default" not in schema:
            continue
        if k in call.arguments and call.arguments[k] == schema["default"]:
            alts.append((ToolCall(call.name, {a: v for a, v in call.arguments.items() if a != k}),))
        elif k not in call.arguments:
            alts.append((ToolCall(call.name, {**call.arguments, k: schema["default"]}),))
    return tuple(alts)


def _trajectory(world: World, index: int, seed: int, rng: random.Random, error_rate: float) -> Trajectory:
    plan = rng.choice(TASKS)(world, rng)
    tools = _tool_set(world, plan.domain, rng)
    available = tuple(t.name for t in tools)
    messages = [Message("user", plan.query)]
    injected = []
    for step, outputs in zip(plan.steps, plan.outputs):
        if len(step.calls) == 1 and rng.random() < error_rate:
            kinds = list(ERROR_KINDS)
            rng.shuffle(kinds)
            for kind in kinds:
                wrong = _wrong_call(step.calls[0], kind, rng)
                if wrong is None:
                    continue
                text, failed = world.execute(wrong, available)
                if failed:
                    messages += [Message("assistant", calls=(wrong,)), Message("tool", text, name=wrong.name)]
                    injected.append(kind)
                    break
        messages.append(Message("assistant", calls=step.calls))
        messages += [Message("tool", out, name=c.name) for c, out in zip(step.calls, outputs)]
    messages.append(Message("assistant", plan.answer))
    traj = Trajectory(id=f"synthetic-{seed}-{index:05d}", tools=tools, messages=tuple(messages),
                      meta={"source": "synthetic", "format": "synthetic", "domain": plan.domain,
                            "injected_errors": injected})
    return validate_trajectory(traj)


def generate_trajectories(n: int, seed: int = 0, error_rate: float = 0.3) -> list[Trajectory]:
    """``n`` multi-turn trajectories: user -> [wrong call -> error output ->] call -> output
    [-> second call -> output] -> final answer. ``error_rate`` is the chance that a single-call
    step is first made wrong."""
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    world, rng = make_world(seed), random.Random(seed)
    return [_trajectory(world, i, seed, rng, error_rate) for i in range(n)]


def generate_prompts(n: int, seed: int = 0) -> list[Trajectory]:
    """``n`` single-turn prompts: a user request and, as the last message, the gold assistant
    call turn (``alternatives`` holds equally correct call sets, e.g. an optional argument
    given explicitly at its default)."""
    world, rng = make_world(seed), random.Random(seed + 1_000_003)
    out = []
    for i in range(n):
        plan = rng.choice(TASKS)(world, rng)
        tools = _tool_set(world, plan.domain, rng)
        gold = plan.steps[0].calls
        alts = _optional_default_alternatives(gold[0], SPECS[gold[0].name][1]) if len(gold) == 1 else ()
        traj = Trajectory(id=f"synthetic-prompt-{seed}-{i:05d}", tools=tools,
                          messages=(Message("user", plan.query), Message("assistant", calls=gold, alternatives=alts)),
                          meta={"source": "synthetic", "format": "synthetic", "domain": plan.domain})
        out.append(validate_trajectory(traj))
    return out
