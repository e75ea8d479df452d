"""The classic built-in tool world (source string ``synthetic:classic``): seeded, nothing to download.

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

Modules: ``state`` (the vocabulary and the seeded facts), ``tools`` (the functions, their specs and
the executing ``World``), ``tasks`` (requests and their gold call steps), ``generate`` (wrong calls,
trajectories, prompts). The larger procedural world is ``tl_lightning.data.world``.
"""

from tl_lightning.data.synthetic.generate import ERROR_KINDS, generate_prompts, generate_trajectories
from tl_lightning.data.synthetic.tools import FUNCTIONS, SPECS, World, make_world

__all__ = ["ERROR_KINDS", "FUNCTIONS", "SPECS", "World", "generate_prompts", "generate_trajectories", "make_world"]
