"""TS / PI / CF: tool selection, parameter identification, content filling, per benchmark rules.

Each benchmark item has one prediction (generated text, in any rendering ``calls.parse_calls``
reads) and gold answers; a pure scorer turns them into three pass/fail flags, always nested
(CF implies PI implies TS). ``ToolCallMetrics`` is the torchmetrics wrapper: it sums the flags in
tensor states reduced with ``sum``, so the figures are exact over DDP / FSDP processes.

Rules:

- ``rotbench`` (RoTBench ``Code/Evaluation/evaluate.py``, version 0): a prediction that does not
  parse as one call, or whose arguments are empty, fails all three. Gold is a list of candidate
  calls; the item passes a level when SOME candidate passes it. TS: same tool name (a prediction
  named literally ``finish`` also matches a candidate that calls the last tool of the list,
  whatever that tool is named). PI: TS and exactly the same argument keys. CF: PI and equal
  arguments after deleting, from both, the keys whose gold value is the string ``"None"``; values
  are not compared (CF = PI) when the candidate calls one of the last two tools of the list (by
  POSITION, since the noisy variants rename finish and ask_to_user) OR a tool NAMED ``finish`` or
  ``ask_to_user`` wherever it stands (the script renames the last two to those names, then skips
  the comparison for those names).
  One quirk of the script is off by default: its CF pass deletes the gold-``"None"`` keys from the
  prediction itself, and the deletion carries over to the candidates checked after it, so a
  prediction equal to a later candidate can fail CF (RoTBench First_Turn/clean has one such item:
  candidates ``nllb(cat, max_length="None")``, ..., ``nllb(dog, max_length="None")``; the call for
  "dog" loses its ``max_length`` while being checked against "cat" and then no longer has the
  keys of the "dog" candidate). That makes a score depend on the order of the candidates, so by
  default each candidate is checked against the prediction as generated; ``none_deletion_carries_over=True``
  (``score_rotbench``, ``score_item``, ``ToolCallMetrics``) reproduces the script exactly.
  What is compared: the native scorer ``json.loads`` the ReAct ``Action Input`` and compares dicts
  with Python ``==``. We parse any rendering with ``parse_call`` and compare
  ``normalize_value(pred) == normalize_value(gold)`` (the JSON round trip), which is the same
  comparison: ``"5" != 5`` (types matter), ``5 == 5.0`` (as in Python and in the native scorer).
- ``toolalpaca``: one step per instruction (the first gold step) scored with the rotbench rules,
  with two exceptions. (1) No last-two-tools rule: ToolAlpaca's tool lists end with real APIs,
  not finish / ask_to_user, so contents are always compared. (2) Empty arguments do not fail:
  17 of the 114 eval_real first steps call an API without arguments (``getAllFruits({})``), so
  under RoTBench's empty-arguments rule no model could pass more than 97/114 = 85.09 TS, yet the
  paper reports 87.72 and 88.60 TS on this set: its re-scoring cannot have applied that rule.
- ``bfcl`` (BFCL v3 ``ast_checker.py``, Python): the prediction is a list of calls
  (``parse_calls``) matched one-to-one, in any order, against the expected calls (so ``simple``
  and ``multiple`` need exactly one call). Per call: name; parameter set (every ``required``
  parameter present, no parameter outside the schema or outside the answer, every answer
  parameter present unless its acceptable list holds ``""``); values (type check with int
  accepted for float; value within the acceptable list, strings compared after BFCL's
  normalisation; an empty list passes for a list parameter whose acceptable values hold ``""``,
  as BFCL's list checkers read ``""`` as an empty list). TS = the right functions (a
  name-preserving matching exists), PI = the right parameter sets too, CF = BFCL's full pass.
  Where BFCL matches greedily, we find a perfect matching if one exists (greedy can miss one when
  one prediction fits two expected calls). Answer names map to declared functions as the reader
  maps them (``bfcl_declared_name``: with a single declared function, its name wins).
  Irrelevance items (empty ground truth): a prediction without a decodable call passes all three,
  any call fails all three (BFCL: pass iff nothing decodes, ``[]`` counting as nothing). An item
  whose answer record is malformed (``{"unscorable": why}``) fails all three. BFCL's Java and
  JavaScript categories are not scored: the reader refuses them, and a Java/JavaScript-only type
  name in a schema (``String``, ``long``, ``HashMap``, ...) raises ``ValueError`` here.
- ``generic`` (the project's own rules, for the synthetic world's held-out splits and any normalized
  JSONL whose scored assistant turn holds the gold calls): the prediction is a list of calls
  (``parse_calls``) matched one-to-one, in any order, against an acceptable call set of the gold turn
  (its calls, or one of its ``alternatives``, e.g. an optional argument given at its default), so
  the number of calls must match. TS = a name-preserving matching exists, PI = one where every pair
  also has the same argument keys, CF = one where every value is equal too (``reward.values_equal``:
  JSON equality, a number equals its string form only for a ``string`` parameter). A gold turn
  without calls (a final answer) passes all three when nothing decodes as a call. Under these rules
  CF is the exact-call rate.

Beside TS / PI / CF every item also gets the IRM category and reward of its prediction
(``reward.classify_call`` against the gold call sets; for BFCL the reader's reference calls, so
"exact" there is stricter than BFCL's CF, which accepts any listed value): ``exact_call`` is the
share of items in the ``exact`` category, ``mean_reward`` their mean reward.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torchmetrics import Metric

from tl_lightning.bfcl_answers import BfclAnswer, bfcl_answer_from_calls, bfcl_expected_calls, bfcl_unscorable_reason
from tl_lightning.calls import ParseFailure, normalize_value, parse_call, parse_calls
from tl_lightning.records import ToolCall, ToolSpec
from tl_lightning.reward import DEFAULT_TABLE, RewardTable, classify_call, values_equal

BENCHMARKS = ("rotbench", "toolalpaca", "bfcl", "generic")


class ItemScore(NamedTuple):
    """Pass/fail of one item at each level; always ``cf <= pi <= ts``."""

    ts: bool
    pi: bool
    cf: bool


FAILED = ItemScore(False, False, False)
PASSED = ItemScore(True, True, True)


# ---------------------------------------------------------------------------------------------
# RoTBench / ToolAlpaca


def _single_call_candidates(gold: Sequence[ToolCall] | Sequence[Sequence[ToolCall]]) -> list[ToolCall]:
    """Gold candidates as single calls: accepts a list of calls or ``Message.acceptable()`` (call
    sets; a set's first call is its candidate, as these benchmarks score one step)."""
    candidates = []
    for entry in gold:
        if isinstance(entry, ToolCall):
            candidates.append(entry)
        elif entry:
            candidates.append(entry[0])
    return candidates


def _rotbench_rules(prediction: str, gold: Sequence, tools: Sequence[ToolSpec], content_free: frozenset[str],
                    empty_arguments_fail: bool, none_deletion_carries_over: bool = False) -> ItemScore:
    """The RoTBench scoring of one item; ``content_free``: candidate tool names whose values are
    not compared (CF = PI); ``empty_arguments_fail``: a call without arguments fails all three;
    ``none_deletion_carries_over``: the official script's quirk (module doc)."""
    pred = parse_call(prediction)
    if isinstance(pred, ParseFailure) or (empty_arguments_fail and not pred.arguments):
        return FAILED
    last_tool = tools[-1].name if tools else None
    pred_args = normalize_value(pred.arguments)
    # what CF compares: the script's CF pass deletes from the prediction as it goes (quirk)
    cf_args = dict(pred_args) if none_deletion_carries_over else pred_args
    best = FAILED
    for cand in _single_call_candidates(gold):
        same_name = pred.name == cand.name or (pred.name == "finish" and cand.name == last_tool)
        if not same_name:
            continue
        gold_args = normalize_value(cand.arguments)
        best = max(best, ItemScore(True, set(gold_args) == set(pred_args), False))
        # CF re-checks the keys, against the prediction as the quirk left it (a carried-over
        # deletion follows a key match, so a CF pass here still implies PI)
        if set(gold_args) != set(cf_args):
            continue
        ignored = {k for k, v in gold_args.items() if v == "None"}
        if none_deletion_carries_over:
            for key in ignored:
                del cf_args[key]
        same_values = ({k: v for k, v in gold_args.items() if k not in ignored}
                       == {k: v for k, v in cf_args.items() if k not in ignored})
        if same_values or cand.name in content_free:
            return ItemScore(True, True, True)
    return best


def score_rotbench(prediction: str, gold_candidates: Sequence, tools: Sequence[ToolSpec],
                   none_deletion_carries_over: bool = False) -> ItemScore:
    """RoTBench's TS/PI/CF of one prediction against its candidate calls (see the module doc).
    ``tools`` in list order: the last two are ask_to_user and finish (whatever their names); a
    candidate calling one of them, or a tool named ``finish`` / ``ask_to_user``, has its values
    left uncompared."""
    content_free = frozenset(t.name for t in tools[-2:]) | {"finish", "ask_to_user"}
    return _rotbench_rules(prediction, gold_candidates, tools, content_free, empty_arguments_fail=True,
                           none_deletion_carries_over=none_deletion_carries_over)


def score_toolalpaca(prediction: str, gold_candidates: Sequence, tools: Sequence[ToolSpec]) -> ItemScore:
    """ToolAlpaca's first gold step scored with the RoTBench rules, except that all contents are
    compared and a call without arguments is a call like any other (see the module doc)."""
    return _rotbench_rules(prediction, gold_candidates, tools, frozenset(), empty_arguments_fail=False)


# ---------------------------------------------------------------------------------------------
# BFCL

# BFCL's Python type names; JSON-schema names too, for tool lists converted to that convention.
_BFCL_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "number": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "object": dict, "any": str,
}
_BFCL_STRIP = re.compile(r"[ ,./\-_*^]")
# Type names only BFCL's Java / JavaScript categories use (its JAVA_TYPE_CONVERSION and
# JS_TYPE_CONVERSION): their values need BFCL's conversion rules, which are not implemented.
_BFCL_CONVERTED_TYPES = frozenset({"byte", "short", "long", "double", "char", "Array", "ArrayList", "Set",
                                   "HashMap", "Hashtable", "Queue", "Stack", "String", "Bigint", "Boolean"})


def bfcl_normalize_string(text: str) -> str:
    """BFCL's string normalisation: drop spaces and ``,./-_*^``, lowercase, ``'`` -> ``"``."""
    return _BFCL_STRIP.sub("", text).lower().replace("'", '"')


def _normalized(value: Any) -> Any:
    return bfcl_normalize_string(value) if isinstance(value, str) else value


def _answer_type(acceptable: list[Any]) -> type | None:
    """The type of the first acceptable value that is not ``""`` (the omission marker)."""
    return next((type(v) for v in acceptable if v != ""), None)


def _element_type_ok(element: Any, items_type: type, answer_list: list[Any]) -> bool:
    return type(element) is items_type or type(element) is _answer_type(answer_list)


def _bfcl_type_ok(value: Any, schema: dict[str, Any], acceptable: list[Any]) -> tuple[bool, bool]:
    """(type accepted, value is a "variable"). BFCL accepts the schema's type, or the type of the
    acceptable values when they differ from the schema (a variable name in place of a value);
    list items are checked one level deep against the schema's ``items`` type."""
    if schema.get("type") in _BFCL_CONVERTED_TYPES:
        raise ValueError(f"parameter type {schema['type']!r} belongs to BFCL's Java/JavaScript categories, whose "
                         "values BFCL converts with its own type rules; they are not supported (scoring them "
                         "with the Python rules would be wrong)")
    expected = _BFCL_TYPES.get(str(schema.get("type")))
    answer_type = _answer_type(acceptable)
    is_variable = expected is not None and answer_type is not None and answer_type is not expected
    if expected is None:  # a type BFCL does not know: nothing to check
        return True, False
    if type(value) is expected:
        items_type = _BFCL_TYPES.get(str((schema.get("items") or {}).get("type")))
        if expected is not list or items_type is None:
            return True, is_variable
        nested_ok = any(not isinstance(answer, list)
                        or all(_element_type_ok(e, items_type, answer) for e in value)
                        for answer in acceptable)
        return nested_ok, is_variable
    return answer_type is not None and type(value) is answer_type, True


def _bfcl_dict_ok(value: dict, acceptable: list[Any]) -> bool:
    """A dict value: some acceptable dict has every key of ``value`` with an accepted value, and
    every key of it that may not be omitted is present."""
    for answer in acceptable:
        if not isinstance(answer, dict):
            continue
        keys_ok = all(k in answer and _normalized(v) in [_normalized(a) for a in answer[k]]
                      for k, v in value.items())
        if keys_ok and all(k in value or "" in v for k, v in answer.items()):
            return True
    return False


def _bfcl_value_ok(value: Any, schema: dict[str, Any], acceptable: list[Any]) -> bool:
    """One argument value against its schema and acceptable list, as BFCL's checker does."""
    if schema.get("type") in ("float", "number") and type(value) is int:
        value = float(value)
    type_ok, is_variable = _bfcl_type_ok(value, schema, acceptable)
    if not type_ok:
        return False
    if is_variable:
        return value in acceptable
    items = schema.get("items") or {}
    if isinstance(value, dict):
        return _bfcl_dict_ok(value, acceptable)
    if isinstance(value, list):
        # BFCL's list checkers iterate each acceptable value: the omission marker "" reads as []
        lists = [[] if answer == "" else answer for answer in acceptable]
        if _BFCL_TYPES.get(str(items.get("type"))) is dict:
            return any(isinstance(answer, list) and len(answer) == len(value)
                       and all(isinstance(v, dict) and _bfcl_dict_ok(v, [a]) for v, a in zip(value, answer))
                       for answer in lists)
        normalized = [_normalized(v) for v in value]
        return any(isinstance(answer, list) and normalized == [_normalized(a) for a in answer] for answer in lists)
    if isinstance(value, str):
        return bfcl_normalize_string(value) in [bfcl_normalize_string(a) for a in acceptable
                                                if isinstance(a, str)]
    return value in acceptable


def _bfcl_call_level(pred: ToolCall, name: str, answers: dict[str, list[Any]],
                     tools_by_name: dict[str, ToolSpec]) -> int:
    """How far one predicted call gets against one expected call: 0 wrong function, 1 right
    function, 2 right parameter set, 3 full pass."""
    if pred.name != name:
        return 0
    tool = tools_by_name.get(name)
    schema = tool.properties if tool else {}
    required = tool.required if tool else []
    args = pred.arguments
    params_ok = (all(p in args for p in required)
                 and all(p in schema and p in answers for p in args)
                 and all(p in args or "" in acceptable for p, acceptable in answers.items()))
    if not params_ok:
        return 1
    values_ok = all(_bfcl_value_ok(v, schema[p] or {}, list(answers[p])) for p, v in args.items())
    return 3 if values_ok else 2


def _has_perfect_matching(n: int, allowed: Callable[[int, int], bool]) -> bool:
    """Whether predictions 0..n-1 can be paired one-to-one with expected calls 0..n-1 using only
    pairs ``allowed(pred, expected)`` (augmenting paths; n is a handful)."""
    owner: dict[int, int] = {}  # expected index -> prediction index

    def place(p: int, seen: set[int]) -> bool:
        for e in range(n):
            if e not in seen and allowed(p, e):
                seen.add(e)
                if e not in owner or place(owner[e], seen):
                    owner[e] = p
                    return True
        return False

    return all(place(p, set()) for p in range(n))


def score_bfcl(prediction: str, ground_truth: BfclAnswer, tools: Sequence[ToolSpec]) -> ItemScore:
    """BFCL's AST check of one prediction (any number of calls) against ``ground_truth`` (one
    ``{name: {param: [acceptable]}}`` per expected call; none for an irrelevance item; or the
    unscorable marker); see the module doc for TS/PI/CF."""
    if bfcl_unscorable_reason(ground_truth) is not None:
        return FAILED
    preds = parse_calls(prediction)
    if not ground_truth:  # irrelevance: abstaining passes, any call fails
        return PASSED if isinstance(preds, ParseFailure) else FAILED
    if isinstance(preds, ParseFailure) or len(preds) != len(ground_truth):
        return FAILED
    tools_by_name = {t.name: t for t in tools}
    expected = bfcl_expected_calls(ground_truth, tools)
    levels = [[_bfcl_call_level(p, name, answers, tools_by_name) for name, answers in expected] for p in preds]
    n = len(preds)
    passed = [_has_perfect_matching(n, lambda p, e, lv=level: levels[p][e] >= lv) for level in (1, 2, 3)]
    return ItemScore(*passed)


def is_bfcl_answer(ground_truth: Any) -> bool:
    """Acceptable-value lists (``[{name: {param: [values]}}]``), as opposed to nothing or to the
    call strings of BFCL's exec_* answers."""
    return isinstance(ground_truth, list) and all(
        isinstance(entry, dict) and len(entry) == 1 and all(isinstance(v, dict) for v in entry.values())
        for entry in ground_truth)


# ---------------------------------------------------------------------------------------------
# generic: call sets of the gold turn


def _gold_call_sets(gold: Sequence) -> list[tuple[ToolCall, ...]]:
    """Gold as call sets: ``Message.acceptable()`` already is; a bare ``ToolCall`` is a set of one."""
    return [(entry,) if isinstance(entry, ToolCall) else tuple(entry) for entry in gold]


def _generic_call_level(pred: ToolCall, gold: ToolCall, tools_by_name: dict[str, ToolSpec]) -> int:
    """How far one predicted call gets against one gold call: 0 wrong tool, 1 right tool, 2 right
    argument keys, 3 right values."""
    if pred.name != gold.name:
        return 0
    if set(pred.arguments) != set(gold.arguments):
        return 1
    tool = tools_by_name.get(gold.name)
    properties = tool.properties if tool is not None and isinstance(tool.properties, dict) else {}
    same = all(values_equal(pred.arguments[k], v, properties.get(k)) for k, v in gold.arguments.items())
    return 3 if same else 2


def score_generic(prediction: str, gold: Sequence, tools: Sequence[ToolSpec]) -> ItemScore:
    """The ``generic`` rules (module doc): the prediction's calls against the best acceptable call
    set of the gold turn, matched one-to-one in any order."""
    preds = parse_calls(prediction)
    sets = _gold_call_sets(gold)
    if any(not calls for calls in sets):  # the turn answers without a call
        return ItemScore(True, True, True) if isinstance(preds, ParseFailure) else FAILED
    if isinstance(preds, ParseFailure):
        return FAILED
    tools_by_name = {t.name: t for t in tools}
    best = FAILED
    for calls in sets:
        if len(calls) != len(preds):
            continue
        levels = [[_generic_call_level(p, g, tools_by_name) for g in calls] for p in preds]
        passed = ItemScore(*(_has_perfect_matching(len(preds), lambda p, e, lv=level: levels[p][e] >= lv)
                             for level in (1, 2, 3)))
        best = max(best, passed)
    return best


def item_category(prediction: str, gold: Sequence, tools: Sequence[ToolSpec],
                  table: RewardTable = DEFAULT_TABLE) -> str:
    """The IRM category of an item's prediction (``reward.classify_call`` against the gold call
    sets). A gold turn that answers without a call (irrelevance, a final answer) has no call to
    compare: abstaining is ``exact`` there, and any call is scored as a call to the wrong tool (or
    to an unknown one) by ``classify_call``."""
    sets = _gold_call_sets(gold)
    if any(not calls for calls in sets) and isinstance(parse_calls(prediction), ParseFailure):
        return "exact"
    return classify_call(prediction, [calls for calls in sets if calls], tools, table)


# ---------------------------------------------------------------------------------------------
# one entry point, one Metric


def score_item(benchmark: str, prediction: str, gold: Sequence, tools: Sequence[ToolSpec],
               bfcl_ground_truth: BfclAnswer | None = None, none_deletion_carries_over: bool = False) -> ItemScore:
    """Score one item. ``gold``: the gold turn's ``Message.acceptable()`` (call sets) or a list of
    candidate calls; ``bfcl_ground_truth``: BFCL's acceptable-value lists (``bfcl`` only; when
    absent, or BFCL exec_* call strings, the first gold call set is the only answer);
    ``none_deletion_carries_over``: RoTBench's script quirk (``rotbench`` only; module doc)."""
    if benchmark == "rotbench":
        return score_rotbench(prediction, gold, tools, none_deletion_carries_over)
    if benchmark == "toolalpaca":
        return score_toolalpaca(prediction, gold, tools)
    if benchmark == "generic":
        return score_generic(prediction, gold, tools)
    if benchmark == "bfcl":
        if not is_bfcl_answer(bfcl_ground_truth) and bfcl_unscorable_reason(bfcl_ground_truth) is None:
            first = gold[0] if gold else ()
            bfcl_ground_truth = bfcl_answer_from_calls([first] if isinstance(first, ToolCall) else first)
        return score_bfcl(prediction, bfcl_ground_truth, tools)
    raise ValueError(f"unknown benchmark {benchmark!r} (expected one of {BENCHMARKS})")


class ToolCallMetrics(Metric):
    """TS / PI / CF, exact-call rate and mean IRM reward over all items seen, summed across processes.

    ``update(predictions, gold, tools, bfcl_ground_truth=None)`` takes one batch as lists of equal
    length (the ``eval`` batch's ``gold`` and ``tools``); ``compute()`` returns
    ``{"ts", "pi", "cf", "exact_call"}`` as float tensors in [0, 100] and ``"mean_reward"``.
    ``none_deletion_carries_over``: RoTBench's script quirk (module doc), off by default.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, benchmark: str, none_deletion_carries_over: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if benchmark not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {benchmark!r} (expected one of {BENCHMARKS})")
        self.benchmark = benchmark
        self.none_deletion_carries_over = none_deletion_carries_over
        for name in ("ts", "pi", "cf", "exact_call", "total"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("reward", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, predictions: Sequence[str], gold: Sequence[Sequence], tools: Sequence[Sequence[ToolSpec]],
               bfcl_ground_truth: Sequence[BfclAnswer | None] | None = None) -> None:
        if not len(predictions) == len(gold) == len(tools):
            raise ValueError(f"predictions ({len(predictions)}), gold ({len(gold)}) and tools "
                             f"({len(tools)}) must have one entry per item")
        answers = bfcl_ground_truth if bfcl_ground_truth is not None else [None] * len(predictions)
        if len(answers) != len(predictions):
            raise ValueError(f"bfcl_ground_truth has {len(answers)} entries for {len(predictions)} items")
        for prediction, item_gold, item_tools, answer in zip(predictions, gold, tools, answers):
            score = score_item(self.benchmark, prediction, item_gold, item_tools, answer,
                               self.none_deletion_carries_over)
            category = item_category(prediction, item_gold, item_tools)
            self.ts += int(score.ts)
            self.pi += int(score.pi)
            self.cf += int(score.cf)
            self.exact_call += int(category == "exact")
            self.reward += DEFAULT_TABLE.value(category)
        self.total += len(predictions)

    def compute(self) -> dict[str, torch.Tensor]:
        denominator = self.total.clamp(min=1).double()
        shares = {name: (getattr(self, name).double() * 100.0 / denominator).float()
                  for name in ("ts", "pi", "cf", "exact_call")}
        return {**shares, "mean_reward": (self.reward / denominator).float()}
