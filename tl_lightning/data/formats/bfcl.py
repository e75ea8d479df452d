"""``bfcl``: a BFCL v3 question file and its ``possible_answer`` file (beside it, or
``answers_path``): one trajectory per item, the gold calls in one assistant turn. The answer model
(acceptable values, reference calls, declared names) is ``tl_lightning.bfcl_answers``, shared with
the scorer. Known defects of the answer files are repaired where the intent is unambiguous and
recorded in ``meta["repaired_gold_names"]``: an answer naming a tool without its module, or naming
another function where only one is declared (``bfcl_declared_name``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tl_lightning.bfcl_answers import bfcl_answer_from_calls, bfcl_declared_name, bfcl_reference_call
from tl_lightning.calls import ParseFailure, parse_call
from tl_lightning.data.formats.fields import get_field, tools_from_list, with_keys
from tl_lightning.data.formats.reading import (
    Format,
    Origin,
    ReadOptions,
    build_trajectory,
    file_records,
    find_side_file,
    jsonl_records,
)
from tl_lightning.records import DataError, Message, ToolCall, ToolSpec, Trajectory


def _bfcl_schema(node: Any) -> Any:
    """BFCL's parameter schema with ``"type": "dict"`` written ``"object"`` at every level (the
    other BFCL type names, e.g. ``float``/``tuple``/``any``, stay: its checker reads them)."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if out.get("type") == "dict":
        out["type"] = "object"
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _bfcl_schema(v) for k, v in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _bfcl_schema(out[key])
    return out


# Categories whose items expect no call (BFCL: "irrelevance" in the category name); they have no
# possible_answer records.
_BFCL_NO_CALL = "irrelevance"
# Categories whose values BFCL converts with Java / JavaScript type rules (java_type_converter /
# js_type_converter: values are source literals in strings, "new ArrayList<>(...)", "123L", "5n").
_BFCL_CONVERTED_LANGUAGES = ("java", "javascript")


def _bfcl_answers_path(path: Path, options: ReadOptions) -> Path:
    if options.answers_path is not None:
        return find_side_file([options.answers_path], "BFCL answer file", path)
    return find_side_file([path.parent / "possible_answer" / path.name,
                           path.parent.parent / "possible_answer" / path.name], "BFCL answer file", path)


@dataclass(frozen=True)
class _BfclAnswers:
    """A possible_answer file: its records by id, and why each unreadable line (by record index:
    BFCL keeps questions and answers in the same order) cannot be read."""

    source: Path
    by_id: dict[str, Any]
    broken: dict[int, str]


def _load_bfcl_answers(path: Path) -> _BfclAnswers:
    """Every line of a possible_answer file (JSON Lines); a line that is not a JSON object with a
    string ``id`` is kept as the reason its item cannot be scored, not as an error of the file."""
    by_id, broken = {}, {}
    for index, answer in jsonl_records(path):
        if isinstance(answer, dict) and isinstance(answer.get("id"), str):
            by_id[answer["id"]] = answer
        else:
            broken[index] = str(answer if isinstance(answer, DataError) else
                                DataError("an answer record must be an object with a string 'id'",
                                          source=str(path), index=index))
    return _BfclAnswers(path, by_id, broken)


def _bfcl_category(rec: Any) -> str | None:
    """The BFCL category of a question record, from its id (``simple_0``, ``live_irrelevance_3-0-1``)."""
    rid = rec.get("id") if isinstance(rec, dict) else None
    return rid.rsplit("_", 1)[0] if isinstance(rid, str) else None


_ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.Div: lambda a, b: a / b}


def _folded(node: ast.expr) -> ast.expr:
    """``1/6`` or ``500*500`` as one number constant (only + - * / of numbers; anything else as is)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _folded(node.operand)
        if isinstance(inner, ast.Constant) and isinstance(inner.value, (int, float)):
            return ast.Constant(-inner.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _folded(node.left), _folded(node.right)
        numbers = [n.value for n in (left, right) if isinstance(n, ast.Constant)
                   and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)]
        if len(numbers) == 2 and not (isinstance(node.op, ast.Div) and numbers[1] == 0):
            return ast.Constant(_ARITHMETIC[type(node.op)](*numbers))
    return node


def _bfcl_exec_call(text: str, tools: tuple[ToolSpec, ...], where: str) -> ToolCall:
    """A BFCL ``exec_*`` answer (a Python call expression) -> ToolCall via ``parse_call``. Three of
    them pass an argument by position (``calculate_mean([1, 3])``) or write a value as arithmetic
    (``p=1/6``); those are first rewritten as keyword arguments (positions named by the tool's
    parameter order) with the arithmetic done, which needs the tool list ``calls.py`` does not have."""
    call = parse_call(text)
    if not isinstance(call, ParseFailure):
        return call
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if isinstance(node, ast.Call):
        spec = next((t for t in tools if t.name == ast.unparse(node.func)), None)
        names = list(spec.properties) if spec else []
        if len(node.args) <= len(names):
            keywords = [ast.keyword(n, v) for n, v in zip(names, node.args)] + list(node.keywords)
            rewritten = ast.Call(node.func, [], [ast.keyword(k.arg, _folded(k.value)) for k in keywords])
            retry = parse_call(ast.unparse(rewritten))
            if not isinstance(retry, ParseFailure):
                return retry
    raise DataError(f"cannot parse the call ({call.reason})", field=where)


def _declared_name(name: str, tools: tuple[ToolSpec, ...], repairs: dict[str, str], where: str) -> str:
    """``bfcl_declared_name``, recording a changed name in ``repairs``; ``DataError`` when the name
    stands for no declared function."""
    declared = bfcl_declared_name(name, tools)
    if declared not in {t.name for t in tools}:
        raise DataError(f"the answer names {name!r}, which is not among the declared functions "
                        f"{sorted(t.name for t in tools)}", field=where)
    if declared != name:
        repairs[name] = declared
    return declared


def _bfcl_gold(answer: Any, tools: tuple[ToolSpec, ...], where: str,
               repairs: dict[str, str]) -> tuple[ToolCall, ...]:
    """BFCL ``ground_truth`` -> its reference calls (``bfcl_reference_call`` per entry), after
    checking the shape of the answer; ``exec_*`` answers are call strings."""
    truth = get_field(answer, "ground_truth", list, where)
    tools_by_name = {t.name: t for t in tools}
    calls = []
    for j, entry in enumerate(truth):
        ew = f"{where}.ground_truth[{j}]"
        if isinstance(entry, str):
            call = _bfcl_exec_call(entry, tools, ew)
            calls.append(ToolCall(_declared_name(call.name, tools, repairs, ew), call.arguments))
            continue
        if not isinstance(entry, dict) or len(entry) != 1:
            raise DataError("expected {tool name: {parameter: [acceptable values]}}", field=ew)
        (name, params), = entry.items()
        if not isinstance(params, dict):
            raise DataError(f"expected an object of parameters, got {type(params).__name__}",
                            field=f"{ew}.{name}")
        for p, values in params.items():
            if not isinstance(values, list) or not values:
                raise DataError("expected a non-empty list of acceptable values", field=f"{ew}.{name}.{p}")
        name = _declared_name(name, tools, repairs, ew)
        calls.append(bfcl_reference_call(name, params, tools_by_name.get(name)))
    if not calls:
        raise DataError("an empty ground truth (only the irrelevance categories expect no call)",
                        field=f"{where}.ground_truth")
    return tuple(calls)


def _bfcl_answer_meta(rid: str, index: int, tools: tuple[ToolSpec, ...],
                      answers: _BfclAnswers) -> tuple[tuple[ToolCall, ...], dict[str, Any]]:
    """The gold calls of question ``rid`` (record ``index``) and the meta its answer brings. A
    malformed answer record (not JSON, wrong shape, naming no declared function) makes the item
    unscorable: no gold call, ``bfcl_ground_truth = {"unscorable": why}``; the other items of the
    file are read as usual. A question without any answer record is an error of that record."""
    if rid not in answers.by_id:
        if index in answers.broken:
            return (), {"bfcl_ground_truth": {"unscorable": answers.broken[index]}}
        raise DataError("no answer with this id in the possible_answer file", field="id")
    answer, repairs = answers.by_id[rid], {}
    try:
        gold = _bfcl_gold(answer, tools, "possible_answer", repairs)
    except DataError as e:
        reason = str(e.located(source=str(answers.source), record_id=rid))
        return (), {"bfcl_ground_truth": {"unscorable": reason}}
    meta: dict[str, Any] = {"bfcl_ground_truth": answer["ground_truth"]}
    if repairs:
        meta["repaired_gold_names"] = repairs
    if any(isinstance(entry, str) for entry in answer["ground_truth"]):
        # exec_* answers are call strings: keep them, and give the checker the usual form
        # {name: {param: [value]}} (one acceptable value each)
        meta["bfcl_exec_ground_truth"] = answer["ground_truth"]
        meta["bfcl_ground_truth"] = bfcl_answer_from_calls(gold)
    if "execution_result_type" in answer:
        meta["execution_result_type"] = answer["execution_result_type"]
    return gold, meta


def _bfcl_record(rec: Any, origin: Origin, answers: _BfclAnswers | None) -> Trajectory:
    rid = get_field(rec, "id", str)
    question = get_field(rec, "question", list)
    messages = []
    for t, turn in enumerate(question):
        for i, m in enumerate(turn if isinstance(turn, list) else [turn]):
            mw = f"question[{t}][{i}]"
            role = get_field(m, "role", str, mw)
            if role not in ("system", "user", "assistant"):
                raise DataError(f"unexpected role {role!r}", field=f"{mw}.role")
            messages.append(Message(role, get_field(m, "content", str, mw)))
    functions = get_field(rec, "function", list)
    tools = tools_from_list([dict(f, parameters=_bfcl_schema(f.get("parameters"))) if isinstance(f, dict) else f
                             for f in functions], "function")
    category = _bfcl_category(rec)
    if _BFCL_NO_CALL in category:  # gold: no call; abstaining passes, any call fails
        gold, answer_meta = (), {"bfcl_ground_truth": []}
    else:
        gold, answer_meta = _bfcl_answer_meta(rid, origin.index, tools, answers)
    messages.append(Message("assistant", "", gold))
    return Trajectory(rid, tools, tuple(messages), origin.meta(category=category, **answer_meta))


def read_bfcl(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """BFCL v3 question file + its ``possible_answer`` file (found beside it, or ``answers_path``):
    one trajectory per item, the gold calls in one assistant turn (several for parallel items:
    ``bfcl_reference_calls``, the calls BFCL's checker accepts); the full acceptable values in
    ``meta["bfcl_ground_truth"]`` (``{name: {param: [values]}}`` per call, for ``exec_*`` too; their
    call strings are in ``meta["bfcl_exec_ground_truth"]``). Answer names go through
    ``bfcl_declared_name``. Irrelevance items (no answer file needed) have no gold call and an
    empty ground truth. An item whose answer record is malformed is read unscorable
    (``_bfcl_answer_meta``). The Java and JavaScript categories are refused (``DataError`` naming
    the category): BFCL converts their values with its own type rules, which this scorer does not
    implement, and Python's rules would score them wrong."""
    answers = None
    for index, rec in file_records(path):
        category = _bfcl_category(rec) or ""
        if category.split("_")[-1] in _BFCL_CONVERTED_LANGUAGES:
            raise DataError(f"BFCL category {category!r} is not supported: BFCL scores it after converting "
                            "each value with its Java/JavaScript type rules (values are source literals "
                            "such as 'new ArrayList<>(...)' or '5L'), which this scorer does not implement; "
                            "scoring it with the Python rules would be wrong", source=str(path), index=index)
        if answers is None and _BFCL_NO_CALL not in category:
            answers = _load_bfcl_answers(_bfcl_answers_path(path, options))
        origin = Origin(path, index, "bfcl")
        yield build_trajectory(path, index, rec, lambda: _bfcl_record(rec, origin, answers))


FORMAT = Format("bfcl", read_bfcl, matches_record=with_keys("question", "function"),
                side_files={"possible_answer/*": "a BFCL answer file; read the question file beside possible_answer/"})
