"""The org's REST query for agents (``BotDefinition`` / ``BotVersion``), shaped like Salesforce's answers."""

from __future__ import annotations

from typing import Any

import pytest
from emulator_wire import Wire

from sessionforce.emulator import DEMO_AGENT_ID, run_emulator

AGENTS = [
    {"id": "0XxSVC000000000001", "name": "Service Assistant", "api_name": "Service_Assistant"},
    {"id": "0XxEMP000000000001", "name": "Helpdesk", "type": "employee"},
    {"id": "0XxOFF000000000001", "name": "Retired Bot", "active": False},
]
# The query forcedotcom/agents (the `sf agent` plugin's library) sends, field for field.
SF_AGENTS_QUERY = (
    "SELECT Id, IsDeleted, DeveloperName, MasterLabel, CreatedDate, CreatedById, LastModifiedDate, LastModifiedById, "
    "SystemModstamp, BotUserId, Description, Type, AgentType, AgentTemplate, (SELECT Id, Status, IsDeleted, "
    "BotDefinitionId, DeveloperName, CreatedDate, CreatedById, LastModifiedDate, LastModifiedById, SystemModstamp, "
    "VersionNumber, CopilotPrimaryLanguage, ToneType, CopilotSecondaryLanguages FROM BotVersions WHERE IsDeleted = "
    "false ORDER BY VersionNumber) FROM BotDefinition WHERE DeveloperName = '{name}' LIMIT 1")


@pytest.fixture(scope="module")
def org() -> Any:
    with run_emulator(agents=AGENTS, strict=True) as emu:
        wire = Wire(emu)
        yield wire
        wire.close()


def query(wire: Wire, soql: str, version: str = "v62.0") -> Any:
    return wire.http.get(f"/services/data/{version}/query", params={"q": soql}, headers=wire.auth)


def test_the_sf_agents_query_finds_an_agent_by_api_name(org: Wire) -> None:
    response = query(org, SF_AGENTS_QUERY.format(name="Service_Assistant"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["totalSize"], body["done"]) == (1, True)
    [record] = body["records"]
    assert record["attributes"] == {"type": "BotDefinition",
                                    "url": "/services/data/v62.0/sobjects/BotDefinition/0XxSVC000000000001"}
    assert (record["Id"], record["DeveloperName"], record["MasterLabel"]) == (
        "0XxSVC000000000001", "Service_Assistant", "Service Assistant")
    assert (record["Type"], record["AgentType"]) == ("ExternalCopilot", "AgentforceServiceAgent")
    assert record["BotUserId"].startswith("005")
    [version] = record["BotVersions"]["records"]
    assert (version["Status"], version["VersionNumber"], version["BotDefinitionId"]) == (
        "Active", 1, "0XxSVC000000000001")
    assert version["attributes"]["type"] == "BotVersion"


def test_employee_and_inactive_agents_show_as_such(org: Wire) -> None:
    soql = ("SELECT Id, DeveloperName, Type, AgentType, BotUserId, (SELECT Status FROM BotVersions) FROM BotDefinition "
            "WHERE DeveloperName IN ('Helpdesk', 'Retired_Bot') ORDER BY DeveloperName")
    records = query(org, soql).json()["records"]
    assert [(r["DeveloperName"], r["Type"], r["AgentType"], r["BotUserId"]) for r in records] == [
        ("Helpdesk", "InternalCopilot", "AgentforceEmployeeAgent", None),
        ("Retired_Bot", "ExternalCopilot", "AgentforceServiceAgent", "005SF0000000AGTAAA")]
    assert [r["BotVersions"]["records"][0]["Status"] for r in records] == ["Active", "Inactive"]


@pytest.mark.parametrize(("where", "expected"), [
    ("MasterLabel = 'service assistant'", ["Service_Assistant"]),  # text compares ignore case, as in SOQL
    ("DeveloperName = 'Nope'", []),
    ("DeveloperName = 'Nope' OR MasterLabel = 'Helpdesk'", ["Helpdesk"]),
    ("(DeveloperName = 'Helpdesk' OR DeveloperName = 'Service_Assistant') AND AgentType = 'AgentforceServiceAgent'",
     ["Service_Assistant"]),
    ("MasterLabel LIKE '%desk'", ["Helpdesk"]),
    ("DeveloperName NOT IN ('Helpdesk', 'Retired_Bot')", ["Service_Assistant"]),
    ("Type != 'ExternalCopilot'", ["Helpdesk"]),
    ("NOT IsDeleted = true AND Id = '0XxEMP000000000001'", ["Helpdesk"]),
])
def test_where_clauses(org: Wire, where: str, expected: list[str]) -> None:
    body = query(org, f"select developername from botdefinition where {where} order by DeveloperName").json()
    assert [r["DeveloperName"] for r in body["records"]] == expected
    assert body["totalSize"] == len(expected)


def test_an_agent_with_no_matching_versions_has_null_children(org: Wire) -> None:
    soql = ("SELECT Id, (SELECT Id FROM BotVersions WHERE Status = 'Active') FROM BotDefinition "
            "WHERE Id = '0XxOFF000000000001'")
    [record] = query(org, soql).json()["records"]
    assert record["BotVersions"] is None


def test_bot_versions_can_be_queried_directly(org: Wire) -> None:
    soql = "SELECT BotDefinitionId, Status FROM BotVersion WHERE Status = 'Inactive'"
    assert [r["BotDefinitionId"] for r in query(org, soql).json()["records"]] == ["0XxOFF000000000001"]


@pytest.mark.parametrize(("soql", "status", "code", "fragment"), [
    ("SELECT Foo FROM BotDefinition", 400, "INVALID_FIELD", "No such column 'Foo' on entity 'BotDefinition'"),
    ("SELECT Id FROM Account", 400, "INVALID_TYPE", "sObject type 'Account' is not supported"),
    ("SELECT Id FROM BotDefinition WHERE", 400, "MALFORMED_QUERY", "unexpected end"),
    ("SELECT Id FROM BotDefinition WHERE Id = 'x' GARBAGE", 400, "MALFORMED_QUERY", "GARBAGE"),
    ("SELECT Id, (SELECT Id FROM Topics) FROM BotDefinition", 400, "MALFORMED_QUERY", "Topics"),
    ("DELETE FROM BotDefinition", 400, "MALFORMED_QUERY", "unexpected token"),
    ("SELECT Id FROM BotDefinition LIMIT x", 400, "MALFORMED_QUERY", "LIMIT"),
    ("SELECT Id FROM BotDefinition WHERE Name = '\u00e9' ; --", 400, "MALFORMED_QUERY", "unexpected token"),
])
def test_bad_queries_answer_like_the_org(org: Wire, soql: str, status: int, code: str, fragment: str) -> None:
    response = query(org, soql)
    assert response.status_code == status, response.text
    [error] = response.json()
    assert error["errorCode"] == code
    assert fragment in error["message"]


def test_query_needs_a_token_and_a_version(org: Wire) -> None:
    response = org.http.get("/services/data/v62.0/query", params={"q": "SELECT Id FROM BotDefinition"})
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert query(org, "SELECT Id FROM BotDefinition", version="latest").status_code == 404
    assert org.http.get("/services/data/v62.0/query", headers=org.auth).json()[0]["errorCode"] == "MALFORMED_QUERY"
    assert org.http.post("/services/data/v62.0/query", headers=org.auth).json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_the_demo_agent_is_found_by_its_api_name(wire: Wire) -> None:
    soql = "SELECT Id, Type FROM BotDefinition WHERE DeveloperName = 'Cog_Chain_Bikes_Assistant'"
    [record] = query(wire, soql).json()["records"]
    assert (record["Id"], record["Type"]) == (DEMO_AGENT_ID, "ExternalCopilot")
    assert wire.admin("GET", "/counters")["requests"] == {"token 200": 1, "query 200": 1}
