"""The procedural tool world: held-out evaluation on tools a model has never seen.

52 domains, each a resource (invoices, parcels, recipes, playlists, tickets, sensors, ...) with
6-8 tools drawn from ten actions (get, get status, get history, list, list by owner, search,
create, update, cancel, count): 369 tools for world seed 0. Each domain names its tools in one
style, dealt evenly: ``get_invoice_status``, ``getInvoiceStatus``, ``GetInvoiceStatus``,
``billing.invoices.get_status`` (parameters in snake_case or camelCase to match). Siblings share
name prefixes (``get_invoice`` / ``get_invoice_status`` / ``get_invoice_history``) and a prompt
offers 3-5 tools: the gold one(s), 1-2 siblings and 1-2 tools of other domains. Parameters are
typed (string, integer, number, boolean, enum, array, nested object), required or optional with
a default; every value a call needs is written in the query (or, for the second step of a
two-step task, in the first step's output).

Modules, one concern each: ``vocabulary`` (resources, styles, values), ``tools`` (actions ->
tool specs, domains, held-out domains), ``executor`` (the schema-driven executor, ``World``),
``queries`` (paraphrased templates, held-out templates), ``tasks`` (``Task``: query, tools, gold
steps, outputs, answer), ``generate`` (trajectories with failed calls, prompts), ``spec`` (the
``synthetic:<split>`` source strings).

Splits, all fixed by the world seed:

- ``train``: the 40 training domains (284 tools), 48 query templates (four of the five of each
  of the 12 groups: ten actions, two-step, parallel);
- ``heldout_templates``: the training domains, asked only with the other 12 templates;
- ``heldout_domains``: 12 domains (85 tools, three of each naming style) whose tools never appear
  in training data, not even as distractors; asked with the training templates.

Tasks: 60% single calls, 20% two parallel calls, 20% two steps (search, then act on the id found).

Public API::

    generate_trajectories(n, seed=0, split="train", error_rate=0.3)  # SFT: list[Trajectory]
    generate_prompts(n, seed=0, split="train")   # up to a gold call turn, with alternatives
    generate_tasks(n, seed=0, split="train")     # list[Task], e.g. for multi-turn environments
    World(world_seed).execute(call, offered_tools) -> Result(output, failed, error_kind)

Records are ``Trajectory`` with ``meta`` {source: "synthetic", format: "synthetic", domain, split,
task_kind, task_id, templates, injected_errors}. The original five-domain world stays in
``tl_lightning.data.synthetic`` (source string ``synthetic:classic``).

Lengths in SmolLM2 tokens (``tests/data/world/test_generate.py`` asserts the bounds; numbers from
500 records of seed 0 rendered with ``data.render`` and tokenized with ``data.tokenize``;
p10 / p50 / p90 / max, ``train`` split; ``heldout_domains`` is within 15 tokens of it but for the
longest trajectories, up to 942 and 712):

==========================  =======================  =====================
sample                      ``chat_template``        ``codellama``
==========================  =======================  =====================
single-call prompt + call   309 / 383 / 468 / 550    176 / 219 / 272 / 346
any prompt + its gold call  314 / 402 / 512 / 615    179 / 233 / 296 / 368
SFT trajectory (MAE kept)   413 / 514 / 639 / 788    252 / 324 / 422 / 525
==========================  =======================  =====================

Most of a prompt is its tool list (about 80 tokens per tool as JSON, 45 for the chat template's
tool instruction); a trajectory adds outputs, the injected failures and the final answer.
"""

from tl_lightning.data.world.executor import ERROR_KINDS, Result, World
from tl_lightning.data.world.generate import generate_prompts, generate_tasks, generate_trajectories
from tl_lightning.data.world.spec import SyntheticSpec, is_synthetic_spec, parse_spec, read_spec
from tl_lightning.data.world.tasks import SPLITS, Task

__all__ = ["ERROR_KINDS", "Result", "SPLITS", "SyntheticSpec", "Task", "World", "generate_prompts",
           "generate_tasks", "generate_trajectories", "is_synthetic_spec", "parse_spec", "read_spec"]
