"""A plugin with a bug, for the tests: reads a label the pod may lack, so
the call raises KeyError (and componentize-py's runtime traps)."""

from wit_world import exports
from wit_world.exports.admission_handler import Decision


class AdmissionHandler(exports.AdmissionHandler):
    def validate_settings(self) -> None:
        pass

    def admit(self, pod, node, active_pods) -> Decision:
        labels = dict((kv.key, kv.value) for kv in pod.labels)
        return Decision(admit=labels["team"] != "", reason="", message="")
