"""The one table of OpenStack services, and the names naming, the catalog, the API reference and
the process lookup derive from it."""

from __future__ import annotations

import pytest

from sniffer import apiref, catalog, procnet, services
from sniffer.openstack import Service, parse
from sniffer.openstack import services as table

GLANCE = '[[service]]\nname = "glance-api"\nports = [9292]\nprefix = "/image"\n'


def test_the_table_reads_typed_in_file_order():
    assert parse(GLANCE + '[[service]]\nname = "openstack"\nagents = ["osc-lib"]\n') == (
        Service("glance-api", ports=(9292,), prefix="/image"),
        Service("openstack", agents=("osc-lib",)),
    )
    names = [service.name for service in table()]
    assert len(names) == len(set(names))
    assert names.index("nova-metadata-api") < names.index("nova-api")  # more specific first


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('[[service]]\nname = "x"\ncolour = "red"\n', "unknown field 'colour'"),
        ("[[service]]\nports = [1]\n", "without a name"),
        ('[[service]]\nname = "x"\nprocesses = ["("]\n', "missing"),
        (GLANCE + '[[service]]\nname = "glare"\nports = [9292]\n', "ports 9292"),
        (GLANCE + '[[service]]\nname = "glare"\nprefix = "/image"\n', "prefix '/image'"),
        (GLANCE + '[[service]]\nname = "x"\nwork = ["cinder-api GET /v3"]\n', "unknown 'cinder"),
        (GLANCE + '[[service]]\nname = "x"\nwork = ["glance-api /v2"]\n', "not CALLEE METHOD"),
        (GLANCE + '[[service]]\nname = "x"\nwork = ["glance-api GET /v2("]\n', "not CALLEE"),
    ],
)
def test_a_mistake_in_the_table_is_an_error(text, error):
    with pytest.raises(ValueError, match=error):
        parse(text)


def test_each_reader_derives_its_view():
    assert services.PREFIXES["/identity"] == "keystone" and services.PORTS[35357] == "keystone"
    assert services.PORTS[8775] == "nova-metadata-api"
    assert catalog.TYPES["volumev3"] == catalog.TYPES["block-storage"] == "cinder-api"
    assert apiref.SERVICE_TYPES["cinder-api"] == "block-storage"
    # only the documented services' prefixes are stripped before matching an operation
    assert set(apiref.PREFIXES) == {
        "/identity", "/image", "/compute", "/volume", "/networking", "/placement"
    }  # fmt: skip
    patterns = [name for _, name in procnet.COMMANDS]
    assert patterns.index("nova-metadata-api") < patterns.index("nova-api")


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["python3", "/usr/local/bin/nova-api-metadata", "--debug"], "nova-metadata-api"),
        (["/usr/bin/python3", "/usr/local/bin/nova-api"], "nova-api"),
        (["uwsgi", "--ini", "/etc/keystone/keystone-uwsgi-public.ini"], "keystone"),
        (["/usr/bin/python3", "/usr/local/bin/openstack", "image", "show"], "openstack"),
        (["/usr/sbin/apache2", "-k", "start"], None),
        (["octavia-api", "--config-file", "x"], "octavia-api"),  # no pattern: its program name
    ],
)
def test_processes_are_named_by_the_first_matching_entry(argv, name):
    assert procnet.service_of(argv) == name


@pytest.mark.parametrize(
    ("user_agent", "caller"),
    [
        ("openstacksdk/1.0.1 keystoneauth1/5.1.2 python-requests/2.31", "openstack"),
        ("python-openstackclient", "openstack"),
        ("nova-api keystoneauth1/5.1.2", "nova-api"),
        ("heat-engine/21.0", "heat-engine"),
        ("nova-metadata-api", None),  # not a User-Agent product the table lists
        ("python-requests/2.31", None),
    ],
)
def test_user_agents_name_callers(user_agent, caller):
    assert services.ServiceMap().agent(user_agent) == caller


def test_the_default_layout_takes_the_longest_prefix_then_the_port():
    names = services.ServiceMap()
    server = ("10.0.0.1", 80)
    assert names.callee(server, "/identity/v3/auth/tokens") == "keystone"
    assert names.callee(server, "/identityx") == "10.0.0.1:80"
    assert names.callee(server, "/load-balancer/v2/lbaas") == "octavia-api"
    assert names.callee(("10.0.0.1", 9292), "/v2/images") == "glance-api"
