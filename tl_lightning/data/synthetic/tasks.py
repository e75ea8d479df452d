"""Tasks of the classic world: a user request, the gold call steps (executed against the world, so
a later step can use an earlier step's real output) and the final answer."""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from typing import Any, Callable

from tl_lightning.data.synthetic.state import (
    AIRPORTS,
    CITIES,
    MEETINGS,
    PEOPLE,
    SEAT_CLASSES,
    START_DATE,
    STOCKS,
    TOPICS,
    UNITS,
    VENUES,
)
from tl_lightning.data.synthetic.tools import FUNCTIONS, World
from tl_lightning.records import ToolCall


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
