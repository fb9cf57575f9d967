// {{NAME}}: an admission plugin for wasmlet, in JavaScript (componentize-js).
// Pods must carry the labels the settings list.
import { settings } from "wasmlet:plugin/host@0.1.0";

function requiredLabels() {
  let parsed;
  try {
    parsed = JSON.parse(settings());
  } catch (e) {
    throw { tag: "invalid-settings", val: `not JSON: ${e.message}` };
  }
  const labels = parsed.labels ?? [];
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === "string")) {
    throw { tag: "invalid-settings", val: "labels: expected a list of strings" };
  }
  return labels;
}

export const admissionHandler = {
  validateSettings() {
    requiredLabels();
  },

  admit(pod, _node, _activePods) {
    const present = new Set(pod.labels.map((kv) => kv.key));
    const missing = requiredLabels().filter((key) => !present.has(key));
    if (missing.length === 0) {
      return { admit: true, reason: "", message: "" };
    }
    return {
      admit: false,
      reason: "MissingLabels",
      message: `pod ${pod.namespace}/${pod.name} lacks labels: ${missing.join(", ")}`,
    };
  },
};
