"""The toolalpaca reader: first gold steps, repaired inputs, undescribed operations, broken records."""

from __future__ import annotations

import json

import pytest

from tests.data.formats.helpers import write_records
from tl_lightning.data.sources import read_trajectories, read_trajectories_with_report
from tl_lightning.records import DataError, ToolCall


def test_toolalpaca_gold_steps_and_repairs(loaded):
    real, _ = loaded["ToolAlpaca/data/eval_real.json"]
    t = next(t for t in real if t.id == "Nager.Date-0")
    assert t.messages[-1].calls == (ToolCall("PublicHolidayIsTodayPublicHoliday", {"countryCode": "CN"}),)
    assert t.tool("LongWeekendLongWeekend").required == ["year", "countryCode"]
    assert t.tool("LongWeekendLongWeekend").properties["year"]["type"] == "integer"
    cb = next(t for t in real if t.id == "CurrencyBeacon-4")
    assert cb.meta["repaired_inputs"][0]["step"] == 0
    assert cb.messages[-1].calls[0].arguments["symbols"] == ["EUR", "GBP"]
    # AviationAPI's gold calls operations only its OpenAPI document describes
    aviation = next(t for t in real if t.id == "AviationAPI-6")
    assert aviation.messages[-1].calls[0].name == "vatsim_pilots_get" and "vatsim_pilots_get" in aviation.tool_names
    described = {t.id: [n for n in t.tool_names if n != "getDetails"] for t in real}
    assert described["AviationAPI-0"][5:] == ["preferred-routes_search_get", "vatsim_pilots_get",
                                              "vatsim_controllers_get", "weather_metar_get", "weather_taf_get"]
    assert described["Nager.Date-0"] == ["CountryCountryInfo", "CountryAvailableCountries", "LongWeekendLongWeekend",
                                         "PublicHolidayPublicHolidaysV3", "PublicHolidayIsTodayPublicHoliday",
                                         "PublicHolidayNextPublicHolidays", "PublicHolidayNextPublicHolidaysWorldwide",
                                         "VersionGetVersion"]
    simulated, _ = loaded["ToolAlpaca/data/eval_simulated.json"]
    assert all(t.tool_names[-1] == "getDetails" for t in real + simulated)
    repaired = [t for t in simulated if t.meta["repaired_inputs"]]
    assert len(repaired) == 30  # 32 repaired steps
    ani = next(t for t in simulated if t.id == "AniAPI-0")
    assert ani.meta["gold_steps"][1]["arguments"] == {"animeId": "${animeId from searchAnime}"}
    assert sum(len(t.meta["repaired_inputs"]) for t in real + simulated) == 36


def _toolalpaca_file(shared_data, tmp_path, mutate):
    apis = json.loads((shared_data / "ToolAlpaca/data/eval_real.json").read_text())[:2]
    mutate(apis)
    return write_records(tmp_path / "eval_real.json", apis)


# (name, mutate, field, record id): a broken tool description loses all the API's instructions
# (one error, id = the API), a broken instruction only itself (id = API-instruction)
TOOLALPACA_CASES = [
    ("missing tool list", lambda apis: apis[0].pop("Function_Description"), "Function_Description", "Nager.Date"),
    ("undeclared tool", lambda apis: apis[0]["Golden_Answers"][1][0].update(Action="nope"),
     "messages[1].calls[0].name", "Nager.Date-1"),
    ("non-dict arguments", lambda apis: apis[0]["Golden_Answers"][1][0].update(Action_Input="[1]"),
     "Golden_Answers[1][0].Action_Input", "Nager.Date-1"),
    ("wrong type", lambda apis: apis[0]["Instructions"].__setitem__(1, 7), "Instructions[1]", "Nager.Date-1"),
]


@pytest.mark.parametrize("name,mutate,fld,rid", TOOLALPACA_CASES, ids=[c[0] for c in TOOLALPACA_CASES])
def test_toolalpaca_broken_records(shared_data, tmp_path, name, mutate, fld, rid):
    file = _toolalpaca_file(shared_data, tmp_path, mutate)
    with pytest.raises(DataError) as err:
        read_trajectories(file, format="toolalpaca")
    assert (err.value.index, err.value.record_id, err.value.field) == (0, rid, fld)
    trajs, report = read_trajectories_with_report(file, format="toolalpaca", on_error="skip")
    first, second = json.loads(file.read_text())
    lost = len(first["Instructions"]) if rid == "Nager.Date" else 1
    assert report.skipped == 1 and len(trajs) == len(first["Instructions"]) + len(second["Instructions"]) - lost
