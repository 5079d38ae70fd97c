"""Webhook URLs: the host as a resolver reads it, refused in every spelling of a private
address; delivery pinned to a checked address, no redirects, failures without detail."""

import asyncio
import ipaddress
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxgate.errors import ApiError
from fluxgate.jobs.webhooks import DELIVERY_ERRORS, DeliveryError, check_url, parse_webhook_url
from fluxgate.local.jobs_sqlite import HttpxPoster

from ..support.bodies import generate, generation
from ..support.polling import wait_for
from ..support.receiver import Receiver
from ..support.servers import serve

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a slow sunset", square=512, steps=4)
ASYNC = {"Prefer": "respond-async"}


def refused(url, **kwargs):
    with pytest.raises(ApiError) as caught:
        check_url(url, **kwargs)
    assert caught.value.status == 400 and caught.value.code == "invalid_webhook_url"
    return caught.value


# -- the host parser -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        # every IPv4 spelling inet_aton accepts
        "https://127.1/h",
        "https://127.0.1/h",
        "https://0x7f.1/h",
        "https://0X7F.0.0.1/h",
        "https://2130706433/h",
        "https://0x7f000001/h",
        "https://017700000001/h",
        "https://0177.0.0.1/h",
        "https://0177.0000.0.01/h",
        "https://10.1/h",
        "https://0xa.0x1/h",
        "https://3232235777/h",  # 192.168.1.1
        "https://0/h",
        "https://0.0.0.0/h",
        "https://169.254.169.254/latest/meta-data",
        "https://2852039166/h",  # 169.254.169.254
        "https://0xa9fea9fe/h",
        "https://100.64.0.1/h",  # CGNAT
        "https://100.100.100.200/h",  # Alibaba metadata
        "https://224.0.0.1/h",  # multicast
        "https://255.255.255.255/h",
        "https://240.0.0.1/h",
        "https://192.0.0.192/h",  # Oracle metadata
        "https://168.63.129.16/h",  # Azure wire server
        "https://198.18.0.1/h",
        # trailing dots and non-ASCII full stops
        "https://localhost./h",
        "https://localhost../h",
        "https://foo.local./h",
        "https://127.0.0.1./h",
        "https://foo\u3002local/h",
        "https://foo\uff0einternal/h",
        "https://foo\uff61local/h",
        "https://127\u30020\u30020\u30021/h",
        "https://\uff11\uff12\uff17.0.0.1/h",  # full-width digits
        "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/h",  # full-width
        "https://LOCALHOST/h",
        "https://local\u00adhost/h",  # soft hyphen: ignored by IDNA
        "https://local\u200bhost.test\u3002local/h",
        # IPv6, in any form
        "https://[::1]/h",
        "https://[0:0:0:0:0:0:0:1]/h",
        "https://[0000:0000:0000:0000:0000:0000:0000:0001]/h",
        "https://[::ffff:127.0.0.1]/h",
        "https://[::ffff:7f00:1]/h",
        "https://[::ffff:169.254.169.254]/h",
        "https://[::127.0.0.1]/h",
        "https://[::]/h",
        "https://[64:ff9b::7f00:1]/h",  # NAT64
        "https://[2002:7f00:1::]/h",  # 6to4
        "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/h",  # Teredo
        "https://[fd00:ec2::254]/h",  # AWS metadata over IPv6
        "https://[fe80::1]/h",
        "https://[fe80::1%25eth0]/h",
        "https://[ff02::1]/h",
        "https://[fc00::1]/h",
        # names
        "https://localhost/h",
        "https://api.localhost/h",
        "https://printer.local/h",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://metadata.google.internal./h",
        "https://metadata/h",  # single label: the resolver's search domains apply
        "https://instance-data/h",
        "https://router.home.arpa/h",
        "https://1.0.0.127.in-addr.arpa/h",
        # userinfo and parser confusion
        "https://user:pw@x.test/h",
        "https://x.test@127.0.0.1/h",
        "https://x.test:443@127.0.0.1/h",
        "https://@127.0.0.1/h",
        "https://x.test\\@127.0.0.1/h",
        "https://x.test\\.127.0.0.1/h",
        "https://127.0.0.1\t/h",
        "https://x.test /h",
        "https://%31%32%37.0.0.1/h",
        "https://127.0.0.1%2f.x.test/h",
        # malformed
        "https://08.0.0.1/h",
        "https://1.2.3.4.5/h",
        "https://256.0.0.1/h",
        "https://1.2.3.0x100/h",
        "https://x.test:99999/h",
        "https://x.test:-1/h",
        "https://x.test:0x1bb/h",
        "https:///h",
        "https:x.test/h",
        "https://[::1/h",
        "https://a..b/h",
        "http://example.com/h",
        "ftp://x.test/h",
        "javascript://x.test/h",
        "https://" + "a" * 64 + ".com/h",
        "https://x.test/" + "a" * 2100,
    ],
)
def test_private_hosts_are_refused_in_every_spelling(url):
    refused(url)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://hooks.example.com/h?x=1", "https://hooks.example.com/h?x=1"),
        ("HTTPS://Hooks.Example.COM:443/h", "https://hooks.example.com/h"),
        ("https://hooks.example.com./h", "https://hooks.example.com/h"),
        ("https://hooks\u3002example\u3002com/h", "https://hooks.example.com/h"),
        ("https://8.8.8.8:8443/h", "https://8.8.8.8:8443/h"),
        ("https://134744072/h", "https://8.8.8.8/h"),  # 8.8.8.8, canonicalised
        ("https://[2606:4700:0:0::1]/h", "https://[2606:4700::1]/h"),
        ("https://b\u00fccher.example/h", "https://xn--bcher-kva.example/h"),
        ("https://hooks.example.com/caf\u00e9 ok", None),  # a space is refused
        ("https://hooks.example.com/caf\u00e9", "https://hooks.example.com/caf%C3%A9"),
        ("https://hooks.example.com", "https://hooks.example.com/"),
        ("https://hooks.example.com/h#frag", "https://hooks.example.com/h"),
    ],
)
def test_public_hosts_are_accepted_in_their_canonical_spelling(url, canonical):
    if canonical is None:
        refused(url)
    else:
        assert check_url(url) == canonical


def test_allow_loopback_admits_loopback_and_nothing_else():
    for url in ("http://127.0.0.1:8080/h", "http://localhost:8080/h", "https://127.1/h"):
        check_url(url, allow_loopback=True)
    assert check_url("http://[::1]:9/h", allow_loopback=True) == "http://[::1]:9/h"
    for url in (
        "http://10.0.0.1/h",
        "http://169.254.169.254/h",
        "http://[fd00:ec2::254]/h",
        "http://printer.local/h",
        "http://hooks.example.com/h",  # http only for loopback
        "https://100.64.0.1/h",
    ):
        refused(url, allow_loopback=True)


PRIVATE_V4 = st.sampled_from(
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ]
).flatmap(
    lambda net: st.integers(
        int(ipaddress.ip_network(net).network_address),
        int(ipaddress.ip_network(net).broadcast_address),
    )
)


@st.composite
def inet_aton_spelling(draw, value: int) -> str:
    """``value`` as one of the 1- to 4-part forms inet_aton reads, each part in decimal,
    octal or hex, maybe with a trailing dot."""
    parts = draw(st.integers(1, 4))
    octets = list(value.to_bytes(4, "big"))
    numbers = [*octets[: parts - 1], int.from_bytes(bytes(octets[parts - 1 :]), "big")]
    out = []
    for n in numbers:
        style = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
        out.append(
            {"dec": str(n), "oct": "0" + format(n, "o"), "hex": hex(n), "HEX": f"0X{n:X}"}[style]
        )
    dot = draw(st.sampled_from([".", "\u3002", "\uff0e", "\uff61"]))
    return dot.join(out) + draw(st.sampled_from(["", "."]))


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_no_spelling_of_a_private_ipv4_address_passes(data):
    value = data.draw(PRIVATE_V4)
    host = data.draw(inet_aton_spelling(value))
    refused(f"https://{host}/h")
    if ipaddress.IPv4Address(value).is_loopback:
        assert check_url(f"http://{host}/h", allow_loopback=True).startswith("http://127.")


@given(st.text(max_size=80))
@settings(max_examples=500, deadline=None)
def test_any_url_is_refused_cleanly_or_accepted_canonically(tail):
    for url in (tail, "https://" + tail, f"https://{tail}.example.com/h", f"https://x.test/{tail}"):
        try:
            canonical = check_url(url)
        except ApiError as exc:
            assert exc.code == "invalid_webhook_url"
            continue
        # a fixed point: what is stored is what is checked, whoever parses it again
        assert check_url(canonical) == canonical
        target = parse_webhook_url(canonical)
        assert canonical.isascii() and target.scheme == "https"


# -- delivery on the local runtime: the address is checked when connecting -------------------


def resolver(*addresses):
    async def resolve(host, port):
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    "addresses",
    [
        ("10.0.0.7",),
        ("127.0.0.1",),
        ("169.254.169.254",),
        ("::1",),
        ("fe80::1%eth0",),
        ("::ffff:127.0.0.1",),
        ("93.184.216.34", "192.168.1.1"),  # one private answer is enough to refuse
    ],
)
def test_a_public_name_resolving_to_a_private_address_is_refused_at_connect_time(addresses):
    poster = HttpxPoster(resolve=resolver(*addresses))
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(poster.post("https://hooks.example.com/h", b"{}", {}))
    assert caught.value.reason == "refused_by_policy"


def test_loopback_when_allowed_is_loopback_only_at_connect_time():
    with Receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        loopback = HttpxPoster(resolve=resolver("127.0.0.1"))
        url = f"http://localhost:{port}/hooks"
        assert asyncio.run(loopback.post(url, b"{}", {}, allow_loopback=True)) == 200
        assert receiver.deliveries[-1][0]["host"] == f"localhost:{port}"
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(loopback.post(url, b"{}", {}))  # not allowed: refused
        assert caught.value.reason == "refused_by_policy"
        private = HttpxPoster(resolve=resolver("10.0.0.7"))
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(private.post(url, b"{}", {}, allow_loopback=True))
        assert caught.value.reason == "refused_by_policy"
    assert len(receiver.deliveries) == 1


class Scripted:
    """A local HTTP server answering each POST with ``status`` (and ``location``), or
    sleeping ``delay`` seconds first."""

    def __init__(self, status=200, location=None, delay=0.0):
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.hits += 1
                time.sleep(delay)
                self.send_response(status)
                if location:
                    self.send_header("location", location)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


def test_a_slow_receiver_is_a_timeout_without_detail():
    with Scripted(delay=1.0) as slow:
        poster = HttpxPoster(timeout=0.2)
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(poster.post(slow.url, b"{}", {}, allow_loopback=True))
    assert caught.value.reason == "timeout" and str(caught.value) == "timeout"


# -- through the API, on both runtimes -------------------------------------------------------


def submit(client, auth, url):
    r = generate(client, auth, {**BODY, "webhook_url": url}, headers=ASYNC)
    assert r.status_code == 202, r.text
    return r.json()


def webhook_state(client, auth, job, *states):
    def settled():
        hook = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["webhook"]
        return hook if hook["state"] in states else None

    # Each attempt is a queue delivery (batched for up to a second, then retried): on a
    # busy machine a few of them take a while.
    return wait_for(settled, timeout=60)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.1/h",
        "https://0x7f.1/h",
        "https://2130706433/h",
        "https://0177.0.0.1/h",
        "https://localhost./h",
        "https://foo.local./h",
        "https://foo\u3002internal/h",
        "https://[::ffff:127.0.0.1]/h",
        "https://[0:0:0:0:0:0:0:1]/h",
        "https://x.test@169.254.169.254/h",
        "https://[fd00:ec2::254]/h",
        "https://metadata.google.internal./h",
        "https://100.64.0.1/h",
    ],
)
def test_the_api_refuses_every_spelling(client, auth, url):
    r = client.post(
        "/v1/images/generations", json={**BODY, "webhook_url": url}, headers={**auth, **ASYNC}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_webhook_url"
    assert r.json()["error"]["param"] == "webhook_url"


@pytest.mark.settings(webhook_allow_loopback=True)
@pytest.mark.parametrize("url", ["http://10.0.0.1/h", "https://169.254.169.254/h"])
def test_allow_loopback_still_refuses_private_addresses(client, auth, url):
    r = client.post(
        "/v1/images/generations", json={**BODY, "webhook_url": url}, headers={**auth, **ASYNC}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_webhook_url"


@pytest.mark.settings(webhook_allow_loopback=True, webhook_retry_base_seconds=0.01)
def test_the_job_keeps_the_canonical_url(client, auth):
    with Receiver() as receiver:
        spelled = receiver.url.replace("127.0.0.1", "0x7f.0.0.1").replace("http:", "HTTP:")
        job = submit(client, auth, spelled)
        assert job["webhook"]["url"] == receiver.url
        wait_for(lambda: receiver.deliveries)


@pytest.fixture
def own_network(runtime, tmp_path):
    """A client of a server whose deliveries go out through its runtime's own network: on
    the Worker, ``npm run worker`` (workerd's ``fetch``). The pooled stacks run in
    wrangler's test harness, which sends a Worker's outbound ``fetch`` through Node's: there
    a redirect is followed and a refused connection comes back as a 500, neither of which
    workerd does."""
    settings = {
        "webhook_allow_loopback": "true",
        "webhook_retry_base_seconds": "0.01",
        "webhook_max_attempts": "2",
    }
    with serve(runtime, tmp_path, **settings) as server:
        auth = {"Authorization": f"Bearer {server.new_key('webhooks')}"}
        with httpx.Client(base_url=server.base, timeout=60) as client:
            yield client, auth


def test_redirects_are_not_followed_and_count_as_failures(own_network):
    client, auth = own_network
    with Receiver() as target, Scripted(302, location=target.url) as redirecting:
        job = submit(client, auth, redirecting.url)
        hook = webhook_state(client, auth, job, "failed")
        assert hook["error"] == "http_302" and hook["last_status"] == 302
        assert redirecting.hits == 2 and target.deliveries == []


def closed_port_url():
    with Scripted() as server:
        url = server.url
    return url  # nothing listens there any more


def test_a_failed_delivery_reports_no_network_detail(own_network):
    client, auth = own_network
    job = submit(client, auth, closed_port_url())
    hook = webhook_state(client, auth, job, "failed")
    assert hook["error"] in DELIVERY_ERRORS and hook["last_status"] is None
    assert hook["error"] == "connection_failed"  # no exception name, errno or port


@pytest.mark.settings(
    webhook_allow_loopback=True, webhook_retry_base_seconds=0.01, webhook_max_attempts=3
)
def test_http_errors_are_reported_by_status(client, auth):
    with Scripted(503) as failing:
        job = submit(client, auth, failing.url)
        hook = webhook_state(client, auth, job, "failed")
    assert hook["error"] == "http_503" and hook["attempts"] == 3
