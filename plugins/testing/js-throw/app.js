// A plugin with a bug, for the tests: reads a field of something undefined,
// so the call throws a TypeError (and componentize-js aborts).
export const admissionHandler = {
  validateSettings() {},
  admit(pod, _node, _activePods) {
    const owner = pod.labels.find((kv) => kv.key === "owner");
    return { admit: owner.value !== "", reason: "", message: "" };
  },
};
