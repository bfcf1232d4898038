"""Bad input, found by the corpus and reproduced on its own: Warning Events that went missing.
Same-named objects of two kinds each get theirs, and so does an object with a 253-character
name (the kube writer and the EventRecorder on FakeKube's API).
"""

from __future__ import annotations

import threading

from fakekube.server import FakeKube

from tests.functional.bad_input.support import warnings


def test_same_named_objects_of_two_kinds_each_get_their_event(fake: FakeKube) -> None:
    from ycloud_controller.kube.backend import ApiBackend
    from ycloud_controller.kube.events import EventRecorder
    from ycloud_controller.kube.status import StatusWriter
    from ycloud_controller.reconcilers.base import EventEffect
    from ycloud_controller.writer import KubeWriter

    client = fake.api_client()
    backend = ApiBackend(client)
    recorder = EventRecorder(backend)
    writer = KubeWriter(backend, recorder, StatusWriter(backend))
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "ip-gateway", "namespace": "bad", "uid": "u1"}}
    nic = {"apiVersion": "iaas.yusur.io/v1", "kind": "Vnic",
           "metadata": {"name": "ip-gateway", "namespace": "bad", "uid": "u2"}}
    message = "10.16.0.1 is reserved in 10.16.0.0/16"
    writer.submit([EventEffect(pod, "Warning", "AddressReserved", message),
                   EventEffect(nic, "Warning", "AddressReserved", message)])
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert writer.flush(timeout=10) and recorder.flush(timeout=10)
        got = warnings(fake)
        assert "AddressReserved" in got.get(("Pod", "bad", "ip-gateway"), ())
        assert "AddressReserved" in got.get(("Vnic", "bad", "ip-gateway"), ())
    finally:
        stop.set()
        thread.join(timeout=5)
        recorder.close()
        client.close()


def test_an_object_with_a_253_character_name_gets_its_event(fake: FakeKube) -> None:
    from ycloud_controller.kube.backend import ApiBackend
    from ycloud_controller.kube.events import EventRecorder

    client = fake.api_client()
    recorder = EventRecorder(ApiBackend(client))
    name = "p" * 253
    try:
        recorder.event({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": "bad", "uid": "u1"}},
                       "Warning", "InvalidIP", "ycloud.io/ip_address: 'banana' is not an IP")
        assert recorder.flush(timeout=10)
        assert "InvalidIP" in warnings(fake).get(("Pod", "bad", name), ())
    finally:
        recorder.close()
        client.close()
