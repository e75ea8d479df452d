"""The world's domains and tools: counts, naming styles, parameter types, siblings, held-out domains."""

from __future__ import annotations

from collections import Counter

from tl_lightning.data.world import World
from tl_lightning.data.world.tools import ACTIONS, build_domains, heldout_domain_names, tool_name
from tl_lightning.data.world.vocabulary import RESOURCES, STYLES, styled


def test_world_has_at_least_40_domains_and_200_distinct_tools():
    world = World(0)
    assert len(world.domains) >= 40
    names = [t.name for d in world.domains for t in d.tools]
    assert len(names) >= 200 and len(set(names)) == len(names)
    assert len({r.namespace for r in RESOURCES}) == len({r.id_prefix for r in RESOURCES}) == len(RESOURCES)


def test_the_world_is_a_function_of_its_seed():
    assert build_domains(0) == build_domains(0)
    assert World(0).heldout_domains == World(0).heldout_domains
    assert build_domains(0) != build_domains(1)
    assert World(0).heldout_domains != World(1).heldout_domains


def test_every_naming_style_in_training_and_held_out_domains():
    world = World(0)
    for heldout in (False, True):
        styles = Counter(d.style for d in world.domains_of(heldout))
        assert set(styles) == set(STYLES), styles
    assert len(world.heldout_domains) == 12 and len(world.domains_of(False)) == 40
    names = {d.style: d.tool("get_status").name for d in world.domains}
    assert names["snake"].startswith("get_") and names["snake"].endswith("_status")
    assert names["camel"].startswith("get") and names["camel"].endswith("Status")
    assert names["pascal"].startswith("Get") and names["pascal"].endswith("Status")
    assert names["dotted"].count(".") == 2 and names["dotted"].endswith(".get_status")


def test_names_in_each_style():
    invoice = RESOURCES[0]
    assert [tool_name(ACTIONS["get_status"], invoice, s, "billing") for s in STYLES] == [
        "get_invoice_status", "getInvoiceStatus", "GetInvoiceStatus", "billing.invoices.get_status"]
    assert tool_name(ACTIONS["list_by_owner"], invoice, "snake", "billing") == "list_invoices_by_customer"
    assert styled(["in_transit", "id"], "camel") == "inTransitId"


def test_every_parameter_type_and_optional_defaults_occur():
    tools = World(0).tools.values()
    schemas = [s for t in tools for s in t.spec.properties.values()]
    types = Counter(s["type"] for s in schemas)
    assert {"string", "integer", "number", "boolean", "array", "object"} <= set(types), types
    assert any("enum" in s for s in schemas)
    assert any(s.get("format") == "date" for s in schemas)
    assert any("properties" in s and "required" in s for s in schemas)  # a nested object
    optional = [(t, k) for t in tools for k in t.spec.properties if k not in t.spec.required]
    assert optional and any("default" in t.spec.properties[k] for t, k in optional)
    assert all(t.spec.required for t in tools)


def test_camel_and_pascal_domains_name_parameters_in_camel_case():
    for d in World(0).domains:
        noun = d.resource.singular
        assert d.tool("get").params["id"] == (f"{noun}Id" if d.style in ("camel", "pascal") else f"{noun}_id")


def test_siblings_share_name_prefixes():
    """Every domain has get / get_status, whose names share everything but the status suffix."""
    for d in World(0).domains:
        get, status = d.tool("get").name, d.tool("get_status").name
        assert status.startswith(get) and status != get, (get, status)


def test_heldout_domains_take_an_equal_share_of_each_style():
    domains = build_domains(3)
    held = heldout_domain_names(domains, 3)
    assert Counter(d.style for d in domains if d.name in held) == {s: 3 for s in STYLES}
