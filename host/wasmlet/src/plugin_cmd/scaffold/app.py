"""{{NAME}}: an admission plugin for wasmlet, in Python (componentize-py).
Pods must carry the labels the settings list."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.admission_handler import Decision
from wit_world.imports import host, types


def required_labels():
    try:
        labels = json.loads(host.settings()).get("labels", [])
    except ValueError as e:
        raise Err(types.Error_InvalidSettings(f"not JSON: {e}"))
    if not isinstance(labels, list) or not all(isinstance(l, str) for l in labels):
        raise Err(types.Error_InvalidSettings("labels: expected a list of strings"))
    return labels


class AdmissionHandler(exports.AdmissionHandler):
    def validate_settings(self) -> None:
        required_labels()

    def admit(self, pod: types.Pod, node: types.NodeInfo, active_pods) -> Decision:
        present = {kv.key for kv in pod.labels}
        missing = [key for key in required_labels() if key not in present]
        if not missing:
            return Decision(admit=True, reason="", message="")
        return Decision(
            admit=False,
            reason="MissingLabels",
            message=f"pod {pod.namespace}/{pod.name} lacks labels: {', '.join(missing)}",
        )
