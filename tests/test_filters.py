"""Less noise (--ignore, --only-service, --exclude-service, --exclude-path) and --template-ids."""

from __future__ import annotations

import json

from conftest import PCAPS, command

CREATE = PCAPS / "server-create.pcap"


def numbers_are_consecutive(run) -> bool:
    numbers = sorted(n for call in run.calls() for n in call["numbers"])
    return numbers == list(range(1, len(numbers) + 1))


def test_exclude_service_drops_its_calls_and_renumbers(sniff):
    everything = sniff(CREATE).calls()
    touching = [c for c in everything if "keystone" in (c["caller"], c["callee"])]
    run = sniff(CREATE, options=("--exclude-service", "keystone"))
    calls = run.calls()
    assert calls and all("keystone" not in (c["caller"], c["callee"]) for c in calls)
    assert len(calls) == len(everything) - len(touching)  # keystone calls nobody: no children
    assert numbers_are_consecutive(run)
    assert len(run.read("diagram.md").splitlines()) == 2 * len(calls)


def test_exclude_path_drops_the_calls_made_while_serving(sniff):
    everything = sniff(CREATE).calls()
    events = next(c for c in everything if c["path"].endswith("/os-server-external-events"))
    children = [c for c in everything if c["parent"] == events["id"]]
    assert children  # nova-api validated neutron's token while serving it
    kept = {c["id"] for c in sniff(CREATE, options=("--exclude-path", "external-events$")).calls()}
    assert events["id"] not in kept and not {c["id"] for c in children} & kept
    assert len(kept) == len(everything) - 1 - len(children)


def test_only_service(sniff):
    calls = sniff(CREATE, options=("--only-service", "nova-api")).calls()
    assert calls and all("nova-api" in (c["caller"], c["callee"]) for c in calls)


def test_ignore_file_in_the_requestshook_format(sniff, tmp_path):
    ignore = tmp_path / "ignore.json"
    ignore.write_text(
        json.dumps(
            {
                "mappings": {"{uuid}": "[0-9a-f-]{36}"},
                "filters": [
                    {
                        "from": "nova-compute",
                        "to": "placement-api",
                        "method": "GET",
                        "urls": ["/placement/resource_providers/{uuid}/inventories"],
                    }
                ],
            }
        )
    )
    everything = sniff(CREATE).calls()
    kept = sniff(CREATE, options=("--ignore", str(ignore))).calls()
    gone = {c["id"] for c in everything} - {c["id"] for c in kept}
    dropped = [c for c in everything if c["id"] in gone]
    assert [(c["caller"], c["method"], c["path"]) for c in dropped if c["depth"] == 0] == [
        (
            "nova-compute",
            "GET",
            "/placement/resource_providers/e8c4d3b2-1a09-4f7e-8d6c-5b4a39281706/inventories",
        ),
    ]
    assert len(dropped) == 2  # and the token validation placement-api made while serving it


def test_bad_ignore_file_is_a_one_line_error(tmp_path):
    ignore = tmp_path / "ignore.json"
    ignore.write_text('{"filters": [{"colour": "red"}]}')
    result = command("-r", str(CREATE), "--ignore", str(ignore))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "unknown filter field 'colour'" in result.stderr


def test_template_ids(sniff):
    run = sniff(PCAPS / "image-show.pcap", options=("--template-ids",))
    diagram = run.read("diagram.md")
    assert "openstack->>glance-api: GET /v2/images/{image_id}\n" in diagram
    assert "glance-api-->>openstack: 200 OK /v2/images/{image_id}\n" in diagram
    # (escaped: a heading ending in {...} is an attribute list to markdown's attr_list)
    assert "### (5) GET /v2/images/\\{image\\_id\\}\n" in run.read("body.md")
    assert "openstack->>keystone: GET /identity/\n" in diagram  # no known operation: as sent
    assert "(5) GET /v2/images/{image_id}</text>" in run.read("report.html")
    # the log keeps the real URLs
    assert "/v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c" in run.read("log.md")
