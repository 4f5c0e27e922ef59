"""The exported JSON Schemas work with the tools a non-Python producer uses.

What a new upstream team does with ``schemas/json/``: generate TypeScript models with
quicktype and with Modelina, type-check them with ``tsc --strict``, and validate its
events with Ajv. The tools are fetched from the npm registry at pinned versions into
``.run/tools/npm`` on first use (``tests/external_tools.py``); nothing is skipped.

- every schema generates, under its short title (``Referral``, not
  ``UkDotGovDotMashDotReferralDotV1``), and the result compiles;
- optional fields are typed (``date_of_birth?: Date | null``), never ``any``: a small
  TypeScript file using the generated types holds lines marked ``@ts-expect-error`` that
  compile only while the types are precise;
- quicktype's runtime converters accept every example event and refuse a broken one;
- Ajv, a second validator independent of the Python ``jsonschema`` package, gives the same
  verdict on the example events and on the contract tests' valid and invalid payloads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemas import examples as ex
from schemas.export import JSON_DIR
from schemas.types import CE_TYPES
from tests.contract.test_models import IN_JSON_SCHEMA, VALID
from tests.external_tools import npm_binary, require_command

#: quicktype, tsc and Ajv share one install; Modelina (whose own dependencies bring another
#: Ajv) has its own, or the two Ajv versions meet in one node_modules and break Modelina.
GENERATORS = {"quicktype": "26.0.0", "typescript": "5.9.3", "ajv": "8.17.1", "ajv-formats": "3.0.1"}
MODELINA = {"@asyncapi/modelina": "5.10.1", "typescript": "5.9.3"}
NODE_SCRIPTS = Path(__file__).resolve().parent / "node"
TSC_FLAGS = ["--strict", "--target", "es2020", "--module", "commonjs", "--lib", "es2020"]
TIMEOUT = 600

SCHEMA_FILES = sorted(JSON_DIR.glob("*.schema.json"))
TITLES = {path: json.loads(path.read_text(encoding="utf-8"))["title"] for path in SCHEMA_FILES}


def _example(ce_type: str) -> Any:
    """The example event the exporter wrote beside the schema (schemas/examples.py's)."""
    return json.loads((JSON_DIR / f"{ce_type}.example.json").read_text(encoding="utf-8"))


EXAMPLES = {model.__name__: _example(ce_type) for model, ce_type in CE_TYPES.items()}


def _run(argv: list[str], cwd: Path | None = None, **kwargs: Any) -> str:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs
    )
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
    stdout: str = done.stdout
    return stdout


def _node_env(bin_dir: Path) -> dict[str, str]:
    return {**os.environ, "NODE_PATH": str(bin_dir.parent)}


@pytest.fixture(scope="module")
def generators() -> Path:
    """The .bin folder holding quicktype and tsc (and the node_modules with Ajv)."""
    require_command("node", "nodejs")
    return npm_binary(GENERATORS, "quicktype").parent


@pytest.fixture(scope="module")
def modelina() -> Path:
    """The .bin folder of the Modelina install (its node_modules holds the library)."""
    require_command("node", "nodejs")
    return npm_binary(MODELINA, "tsc").parent


@pytest.fixture(scope="module")
def quicktype_out(generators: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TypeScript module per schema, ``<Title>.ts``, as the quicktype CLI writes it."""
    out = tmp_path_factory.mktemp("quicktype")
    # One process per schema, all at once: most of quicktype's time is node starting up.
    quicktype = [str(generators / "quicktype"), "--lang", "typescript", "--src-lang", "schema"]
    running = [
        (
            path,
            subprocess.Popen(
                [*quicktype, "--top-level", title, "--out", str(out / f"{title}.ts"), str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for path, title in TITLES.items()
    ]
    failures = []
    for path, process in running:
        _, stderr = process.communicate(timeout=TIMEOUT)
        if process.returncode != 0:
            failures.append(f"{path.name}: {stderr.strip()}")
    assert not failures, "quicktype failed:\n" + "\n".join(failures)
    return out


@pytest.fixture(scope="module")
def modelina_out(modelina: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Modelina's TypeScript interfaces: one folder per schema, one file per model."""
    out = tmp_path_factory.mktemp("modelina")
    script = str(NODE_SCRIPTS / "modelina_typescript.js")
    files = [str(path) for path in SCHEMA_FILES]
    _run(["node", script, str(out), *files], env=_node_env(modelina))
    return out


def _interfaces(text: str) -> dict[str, str]:
    """``{name: body}`` of every ``interface`` declared in TypeScript ``text``."""
    found = re.finditer(r"^(?:export )?interface (\w+) \{\n(.*?)^\}", text, re.M | re.S)
    return {match.group(1): match.group(2) for match in found}


def _property_types(body: str) -> dict[str, str]:
    """``{"name?": "type"}`` of an interface body (comments left out)."""
    lines = (line.strip() for line in body.splitlines())
    pairs = (
        line.rstrip(";").split(":", 1)
        for line in lines
        if line and not line.startswith(("/*", "*", "//"))
    )
    return {name.strip(): kind.strip() for name, kind in pairs}


# --- quicktype -------------------------------------------------------------------------

QUICKTYPE_USAGE = """\
import { Child, Convert as ReferralJson, Referral } from "./Referral";
import { PoliceNotification } from "./PoliceNotification";

export const unborn: Child = {
    child_ref: "C-2",
    gender: "unknown",
    date_of_birth: null,
    expected_date_of_birth: new Date("2024-09-01"),
};
// @ts-expect-error gender is an enumeration, not any string
export const wrongGender: Child = { child_ref: "C-3", gender: "alien" };
// @ts-expect-error a date of birth is a date or null, not a number
export const wrongDate: Child = { child_ref: "C-4", gender: "male", date_of_birth: 5 };
// @ts-expect-error dash_score is a number or null
export const wrongScore: PoliceNotification["dash_score"] = "high";
// @ts-expect-error a referral has at least one child
export const noChildren: Referral["children"] = [];
export const roundTrip = (text: string): string => ReferralJson.referralToJson(
    ReferralJson.toReferral(text),
);
"""

CONVERT = """\
const examples = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = {};
for (const [title, data] of Object.entries(examples)) {
    const convert = require(`./${title}.js`).Convert;
    const reader = convert["to" + title];
    try {
        reader(JSON.stringify(data));
        out[title] = "ok";
    } catch (error) {
        out[title] = String(error.message || error).slice(0, 500);
    }
}
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def quicktype_compiled(generators: Path, quicktype_out: Path) -> Path:
    """The quicktype modules and a file using them, compiled by ``tsc --strict``."""
    (quicktype_out / "usage.ts").write_text(QUICKTYPE_USAGE, encoding="utf-8")
    sources = sorted(path.name for path in quicktype_out.glob("*.ts"))
    _run([str(generators / "tsc"), *TSC_FLAGS, "--noEmitOnError", *sources], cwd=quicktype_out)
    return quicktype_out


def test_quicktype_generates_every_schema_under_its_short_name(quicktype_out: Path) -> None:
    """Each schema file gives a module whose top-level interface is the model's short name."""
    for path, title in TITLES.items():
        assert re.fullmatch(r"[A-Z][A-Za-z]+", title), f"{path.name}: title {title!r}"
        text = (quicktype_out / f"{title}.ts").read_text(encoding="utf-8")
        assert title in _interfaces(text), f"{path.name}: no interface {title}"
        assert "UkDotGov" not in text, path.name
        assert "DotV1" not in text, path.name


def test_quicktype_types_optional_fields(quicktype_out: Path) -> None:
    """Optional and nullable fields keep their types; no interface property is ``any``."""
    referral = _interfaces((quicktype_out / "Referral.ts").read_text(encoding="utf-8"))
    child = _property_types(referral["Child"])
    assert child["date_of_birth?"] == "Date | null"
    assert child["expected_date_of_birth?"] == "Date | null"
    assert child["given_name?"] == "null | string"
    assert child["address?"] == "Address | null"
    assert child["gender"] == "Gender"
    assert _property_types(referral["Consent"])["override_reason?"] == "OverrideReason | null"
    police = _interfaces((quicktype_out / "PoliceNotification.ts").read_text(encoding="utf-8"))
    notification = _property_types(police["PoliceNotification"])
    assert notification["dash_risk?"] == "DashRisk | null"
    assert notification["dash_score?"] == "number | null"
    assert notification["children"] == "[PoliceChild, ...PoliceChild[]]"
    for title in TITLES.values():
        text = (quicktype_out / f"{title}.ts").read_text(encoding="utf-8")
        for name, body in _interfaces(text).items():
            for field, kind in _property_types(body).items():
                assert not re.search(r"\bany\b", kind), f"{title}.{name}.{field}: {kind}"


def test_quicktype_output_compiles_strictly(quicktype_compiled: Path) -> None:
    """``tsc --strict`` accepts the generated modules, and the ``@ts-expect-error`` lines of
    the usage file (wrong enum value, wrong type, empty children) are errors, as they must be
    for types that are not ``any``."""
    assert (quicktype_compiled / "Referral.js").is_file()
    assert (quicktype_compiled / "usage.js").is_file()


def test_quicktype_converters_read_every_example(quicktype_compiled: Path) -> None:
    """quicktype's runtime converters accept each example event, and refuse a broken one."""
    examples = dict(EXAMPLES)
    broken = ex.referral()
    broken["children"][0]["gender"] = "alien"
    examples_and_broken = {**examples, "Broken": broken}
    (quicktype_compiled / "Broken.js").write_text(
        'const { Convert } = require("./Referral.js");\n'
        "exports.Convert = { toBroken: (text) => Convert.toReferral(text) };\n",
        encoding="utf-8",
    )
    (quicktype_compiled / "convert.js").write_text(CONVERT, encoding="utf-8")
    result = json.loads(
        _run(["node", "convert.js"], cwd=quicktype_compiled, input=json.dumps(examples_and_broken))
    )
    assert {title: result[title] for title in examples} == dict.fromkeys(examples, "ok")
    assert result["Broken"] != "ok"


# --- Modelina --------------------------------------------------------------------------

MODELINA_USAGE = """\
import { Child } from "./uk.gov.mash.referral.v1/Child";
import { PoliceNotification } from "./uk.gov.mash.police-notification.v1/PoliceNotification";

export const unborn: Child = {
    child_ref: "C-2",
    gender: "unknown",
    date_of_birth: null,
    expected_date_of_birth: "2024-09-01",
};
// @ts-expect-error gender is an enumeration, not any string
export const wrongGender: Child = { child_ref: "C-3", gender: "alien" };
// @ts-expect-error a date of birth is text or null, not a number
export const wrongDate: Child = { child_ref: "C-4", gender: "male", date_of_birth: 5 };
// @ts-expect-error dash_risk is an enumeration or null
export const wrongRisk: PoliceNotification["dash_risk"] = "extreme";
"""


def test_modelina_generates_typed_models_that_compile(modelina: Path, modelina_out: Path) -> None:
    """Modelina reads every file (draft-07), names the models by their short titles, types
    optional fields, and its output compiles under ``tsc --strict`` with the usage file."""
    for path, title in TITLES.items():
        folder = modelina_out / path.name.removesuffix(".schema.json")
        text = (folder / f"{title}.ts").read_text(encoding="utf-8")
        assert title in _interfaces(text), f"{path.name}: no interface {title}"
        for module in folder.glob("*.ts"):
            assert not re.search(r"\bany\b", module.read_text(encoding="utf-8")), module
    child = (modelina_out / "uk.gov.mash.referral.v1" / "Child.ts").read_text(encoding="utf-8")
    fields = _property_types(_interfaces(child)["Child"])
    assert fields["date_of_birth?"] == "string | null"
    assert fields["address?"] == "Address | null"
    police = modelina_out / "uk.gov.mash.police-notification.v1" / "PoliceNotification.ts"
    notification = _property_types(
        _interfaces(police.read_text(encoding="utf-8"))["PoliceNotification"]
    )
    assert notification["dash_risk?"] == "DashRisk | null"
    (modelina_out / "usage.ts").write_text(MODELINA_USAGE, encoding="utf-8")
    sources = sorted(str(path.relative_to(modelina_out)) for path in modelina_out.rglob("*.ts"))
    _run([str(modelina / "tsc"), *TSC_FLAGS, "--noEmit", *sources], cwd=modelina_out)


# --- Ajv -------------------------------------------------------------------------------


def _ajv(generators: Path, cases: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    payload = [
        {"schema": f"urn:uk:gov:mash:schema:{ce_type}", "data": data} for ce_type, data in cases
    ]
    script = str(NODE_SCRIPTS / "ajv_validate.js")
    output = _run(
        ["node", script, str(JSON_DIR)], input=json.dumps(payload), env=_node_env(generators)
    )
    results: list[dict[str, Any]] = json.loads(output)
    return results


def test_ajv_accepts_every_example_event(generators: Path) -> None:
    """Ajv (strict mode, formats checked) accepts each example file the exporter wrote
    (``<ce_type>.example.json``) against its schema."""
    cases = [(ce_type, _example(ce_type)) for ce_type in CE_TYPES.values()]
    results = _ajv(generators, cases)
    refused = {ce: r["errors"] for (ce, _), r in zip(cases, results, strict=True) if not r["valid"]}
    assert refused == {}


def test_ajv_agrees_with_the_contract_tests(generators: Path) -> None:
    """Ajv accepts the contract tests' valid payloads and refuses their invalid ones (those
    whose rule JSON Schema can express), as the Python validator does."""
    valid = [(CE_TYPES[case.values[0]], case.values[1]) for case in VALID]
    invalid = [(CE_TYPES[case.values[0]], case.values[1]) for case in IN_JSON_SCHEMA]
    assert invalid, "no invalid cases: the check would prove nothing"
    results = _ajv(generators, valid + invalid)
    verdicts = [result["valid"] for result in results]
    wrong = [
        (case.id, result["errors"])
        for case, result, expected in zip(
            VALID + IN_JSON_SCHEMA,
            results,
            [True] * len(valid) + [False] * len(invalid),
            strict=True,
        )
        if result["valid"] is not expected
    ]
    assert wrong == [], wrong
    assert verdicts.count(True) == len(valid)


# --- AsyncAPI --------------------------------------------------------------------------


def test_asyncapi_document_passes_the_official_parser(modelina: Path) -> None:
    """schemas/asyncapi.yaml parses with @asyncapi/parser (Modelina's own dependency): the
    servers, security schemes, Kafka bindings and the $refs to the schema files are valid."""
    document = JSON_DIR.parent / "asyncapi.yaml"
    script = str(NODE_SCRIPTS / "asyncapi_validate.js")
    done = subprocess.run(
        ["node", script, str(document)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=_node_env(modelina),
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    diagnostics = json.loads(done.stdout)
    assert [d for d in diagnostics if d["severity"] in (0, 1)] == []
