"""A third-party-style admission plugin in Python (built with componentize-py).

A small "baseline" pod security policy: no privileged containers, no host
namespaces, no dangerous added capabilities, unless the pod's namespace is
exempt in the settings.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.admission_handler import Decision
from wit_world.imports import host, types

DEFAULT_FORBIDDEN = ["ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE"]


def load_settings():
    try:
        raw = json.loads(host.settings())
    except ValueError as e:
        raise Err(types.Error_InvalidSettings(f"not JSON: {e}"))
    exempt = raw.get("exempt-namespaces", [])
    forbidden = raw.get("forbidden-capabilities", DEFAULT_FORBIDDEN)
    for field, value in (("exempt-namespaces", exempt), ("forbidden-capabilities", forbidden)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Err(types.Error_InvalidSettings(f"{field}: expected a list of strings"))
    unknown = set(raw) - {"exempt-namespaces", "forbidden-capabilities"}
    if unknown:
        raise Err(types.Error_InvalidSettings(f"unknown setting(s): {', '.join(sorted(unknown))}"))
    return exempt, {c.upper() for c in forbidden}


def violations(pod: types.Pod, forbidden) -> list:
    found = []
    for flag, field in ((pod.host_network, "hostNetwork"), (pod.host_pid, "hostPID"), (pod.host_ipc, "hostIPC")):
        if flag:
            found.append(f"{field} is true")
    for c in pod.containers:
        sc = c.security_context
        if sc is None:
            continue
        if sc.privileged:
            found.append(f"container {c.name} is privileged")
        added = sorted({cap.upper().removeprefix("CAP_") for cap in sc.capabilities_add} & forbidden)
        if added:
            found.append(f"container {c.name} adds {', '.join(added)}")
    return found


class AdmissionHandler(exports.AdmissionHandler):
    def validate_settings(self) -> None:
        load_settings()

    def admit(self, pod: types.Pod, node: types.NodeInfo, active_pods) -> Decision:
        exempt, forbidden = load_settings()
        if pod.namespace in exempt:
            return Decision(admit=True, reason="", message="")
        found = violations(pod, forbidden)
        if not found:
            return Decision(admit=True, reason="", message="")
        host.log(types.LogLevel.INFO, f"rejecting {pod.namespace}/{pod.name}: {'; '.join(found)}")
        return Decision(
            admit=False,
            reason="PodSecurityBaseline",
            message=f"pod {pod.namespace}/{pod.name} violates the baseline policy: {'; '.join(found)}",
        )
