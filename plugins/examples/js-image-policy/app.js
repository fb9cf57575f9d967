// A third-party-style admission plugin in JavaScript (built with
// componentize-js): images must come from the registries the settings
// allow, and name a tag other than `latest` (or a digest).
import { settings } from "wasmlet:plugin/host@0.1.0";

const KNOWN = new Set(["allowed-registries", "allow-latest"]);

// Settings errors are the WIT `error` variant: throwing one returns `err`.
function loadSettings() {
  let raw;
  try {
    raw = JSON.parse(settings());
  } catch (e) {
    throw { tag: "invalid-settings", val: `not JSON: ${e.message}` };
  }
  for (const key of Object.keys(raw)) {
    if (!KNOWN.has(key)) {
      throw { tag: "invalid-settings", val: `unknown setting: ${key}` };
    }
  }
  const registries = raw["allowed-registries"] ?? [];
  if (!Array.isArray(registries) || !registries.every((r) => typeof r === "string")) {
    throw { tag: "invalid-settings", val: "allowed-registries: expected a list of strings" };
  }
  return { registries, allowLatest: raw["allow-latest"] === true };
}

// The registry of an image reference (Docker Hub's when the first part is
// no host), and whether it names `latest` (explicitly or by saying nothing).
function parse(image) {
  const slash = image.indexOf("/");
  const first = slash < 0 ? "" : image.slice(0, slash);
  const hasHost = first.includes(".") || first.includes(":") || first === "localhost";
  const registry = hasHost ? first : "docker.io";
  const rest = hasHost ? image.slice(slash + 1) : image;
  const digest = rest.includes("@");
  const colon = rest.lastIndexOf(":");
  const tag = digest ? null : colon < 0 ? "latest" : rest.slice(colon + 1);
  return { registry, latest: tag === "latest" };
}

export const admissionHandler = {
  validateSettings() {
    loadSettings();
  },

  admit(pod, _node, _activePods) {
    const { registries, allowLatest } = loadSettings();
    const problems = [];
    for (const c of pod.containers) {
      const { registry, latest } = parse(c.image);
      if (registries.length > 0 && !registries.includes(registry)) {
        problems.push(`container ${c.name}: registry ${registry} is not allowed`);
      }
      if (latest && !allowLatest) {
        problems.push(`container ${c.name}: image ${c.image} has no tag but latest`);
      }
    }
    if (problems.length === 0) {
      return { admit: true, reason: "", message: "" };
    }
    return {
      admit: false,
      reason: "ImagePolicy",
      message: `pod ${pod.namespace}/${pod.name}: ${problems.join("; ")}`,
    };
  },
};
