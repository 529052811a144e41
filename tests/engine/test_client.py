"""RiskEngineClient against real gRPC servers: round-robin, health, retries, deadline, TLS."""
import threading

import grpc
import pytest

from engine_helpers import MODEL_VERSION, RecordingPredictionService, start_recording_server
from engine.client import ClientOptions, NoServerError, RiskEngineClient, ScoringError
from serving import tls
from serving.certs import make_certificates

FEATURES = {"amount": 12.5, "merchant_category": "grocery", "channel": "card_present",
            "hour_of_day": 10, "is_weekend": 0, "is_night": 0}


def client_for(addresses, **overrides):
    options = dict(addresses=tuple(addresses), health_check_interval_seconds=60.0,
                   backoff_initial_seconds=0.01)
    options.update(overrides)
    return RiskEngineClient(ClientOptions(**options))


@pytest.fixture(name="two_servers")
def fixture_two_servers():
    services = [RecordingPredictionService(), RecordingPredictionService()]
    started = [start_recording_server(service) for service in services]
    yield services, [server for server, _ in started], [address for _, address in started]
    for server, _ in started:
        server.stop(grace=None)


def test_requests_go_round_robin_over_the_servers(two_servers):
    services, _, addresses = two_servers
    with client_for(addresses) as client:
        results = [client.predict(FEATURES, label="stable") for _ in range(20)]
    assert [len(s.requests) for s in services] == [10, 10]
    assert {r.address for r in results} == set(addresses)
    assert all(r.model_version == MODEL_VERSION and r.attempts == 1 for r in results)
    assert services[0].requests[0].model_spec.version_label == "stable"


def test_a_server_failing_its_health_check_is_skipped(two_servers):
    services, servers, addresses = two_servers
    with client_for(addresses) as client:
        servers[1].stop(grace=None).wait()
        client.check_all()
        assert [s.healthy for s in client.servers] == [True, False]
        results = [client.predict(FEATURES) for _ in range(10)]
    assert {r.address for r in results} == {addresses[0]}
    assert len(services[0].requests) == 10


def test_a_server_without_a_health_service_is_used():
    """tensorflow_model_server answers grpc.health.v1 with UNIMPLEMENTED."""
    service = RecordingPredictionService()
    server, address = start_recording_server(service, with_health=False)
    try:
        with client_for([address]) as client:
            client.check_all()
            assert client.servers[0].healthy
            assert client.predict(FEATURES).address == address
    finally:
        server.stop(grace=None)


def test_a_server_going_down_between_checks_costs_no_failed_request(two_servers):
    services, servers, addresses = two_servers
    with client_for(addresses) as client:
        servers[0].stop(grace=None).wait()  # the client has not noticed yet
        results = [client.predict(FEATURES) for _ in range(10)]
    assert {r.address for r in results} == {addresses[1]}
    assert max(r.attempts for r in results) == 2  # one retry, then it is skipped
    assert len(services[1].requests) == 10


def test_no_healthy_server_is_reported_with_every_address(two_servers):
    _, servers, addresses = two_servers
    for server in servers:
        server.stop(grace=None).wait()
    with client_for(addresses) as client:
        with pytest.raises(NoServerError, match=f"{addresses[0]}.*{addresses[1]}"):
            client.require_healthy()


def flaky(code, failures):
    """A fail_when that fails the first `failures` requests with `code`."""
    count = {"n": 0}

    def fail_when(request):
        count["n"] += 1
        return (code, "flaky") if count["n"] <= failures else None

    return fail_when


def test_unavailable_is_retried_with_backoff():
    service = RecordingPredictionService(fail_when=flaky(grpc.StatusCode.UNAVAILABLE, 2))
    server, address = start_recording_server(service)
    try:
        with client_for([address], max_attempts=4) as client:
            result = client.predict(FEATURES)
    finally:
        server.stop(grace=None)
    assert result.attempts == 3 and len(service.requests) == 3


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.FAILED_PRECONDITION])
def test_other_errors_are_not_retried(code):
    service = RecordingPredictionService(fail_when=flaky(code, 100))
    server, address = start_recording_server(service)
    try:
        with client_for([address]) as client:
            with pytest.raises(ScoringError) as caught:
                client.predict(FEATURES)
    finally:
        server.stop(grace=None)
    assert caught.value.code == code.name
    assert len(service.requests) == 1


def test_unavailable_retries_stop_at_max_attempts():
    service = RecordingPredictionService(fail_when=flaky(grpc.StatusCode.UNAVAILABLE, 100))
    server, address = start_recording_server(service)
    try:
        with client_for([address], max_attempts=3) as client:
            with pytest.raises(ScoringError) as caught:
                client.predict(FEATURES)
    finally:
        server.stop(grace=None)
    assert caught.value.code == "UNAVAILABLE"
    assert len(service.requests) == 3


def test_the_deadline_bounds_a_call():
    release = threading.Event()

    def stall(request):
        release.wait(5.0)
        return None

    service = RecordingPredictionService(fail_when=stall)
    server, address = start_recording_server(service)
    try:
        with client_for([address], deadline_seconds=0.2) as client:
            with pytest.raises(ScoringError) as caught:
                client.predict(FEATURES)
    finally:
        release.set()
        server.stop(grace=None)
    assert caught.value.code == "DEADLINE_EXCEEDED"
    assert len(service.requests) == 1


@pytest.fixture(name="certificates", scope="module")
def fixture_certificates(tmp_path_factory):
    return make_certificates(str(tmp_path_factory.mktemp("certs")))


def tls_server(ssl_config_file):
    service = RecordingPredictionService()
    credentials = tls.server_credentials(tls.load_ssl_config(ssl_config_file))
    server, address = start_recording_server(service, credentials)
    return server, address.replace("127.0.0.1", "localhost"), service


def test_mutual_tls_with_the_client_ssl_config(certificates):
    server, address, service = tls_server(certificates.server_mtls_ssl_config)
    try:
        with client_for([address], ssl_config_file=certificates.client_ssl_config) as client:
            client.require_healthy()
            assert client.predict(FEATURES).model_version == MODEL_VERSION
    finally:
        server.stop(grace=None)
    assert len(service.requests) == 1


def test_mutual_tls_rejects_a_client_without_a_certificate(certificates, tmp_path):
    ca_only = tmp_path / "ca_only.pbtxt"
    ca_only.write_text('custom_ca: "%s"\n' % open(certificates.ca_cert).read()
                       .replace("\n", "\\n"))
    server, address, service = tls_server(certificates.server_mtls_ssl_config)
    try:
        with client_for([address], ssl_config_file=str(ca_only), max_attempts=1) as client:
            with pytest.raises(NoServerError):
                client.require_healthy()
        # Plaintext to a TLS server fails the same way.
        with client_for([address], max_attempts=1) as client:
            with pytest.raises(NoServerError):
                client.require_healthy()
    finally:
        server.stop(grace=None)
    assert service.requests == []


def test_tls_without_client_certificate_when_the_server_does_not_ask(certificates):
    server, address, _ = tls_server(certificates.server_ssl_config)
    try:
        with client_for([address], ssl_config_file=certificates.client_ssl_config) as client:
            assert client.predict(FEATURES).model_version == MODEL_VERSION
    finally:
        server.stop(grace=None)
