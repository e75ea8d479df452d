"""The classic world's vocabulary and the in-memory state its tools act on, built from the seed."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

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


def build_state(seed: int) -> WorldState:
    """The facts of the world for ``seed``: weather per city, papers, stock prices, calendar."""
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
