//! `wasmlet plugin …` on the real example plugins (built by scripts/build-plugins.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wasmlet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmlet"))
        .args(args)
        // One cache for every run: entries are keyed by the component and
        // this build, and a Python or JS component is 70-140 MB compiled.
        .env(
            "WASMLET_PLUGIN_CACHE",
            std::env::temp_dir().join("wasmlet-cli-cache"),
        )
        .output()
        .expect("run wasmlet")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The manifest in `dir` (not Cargo.toml), if there is one.
fn manifest_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "toml") && !p.ends_with("Cargo.toml"))
}

/// Every admission plugin under plugins/examples and plugins/builtin. (Pod
/// sources have component tests of their own, in the plugin host's tests.)
fn example_plugins() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["plugins/examples", "plugins/builtin"]
        .iter()
        .flat_map(|d| std::fs::read_dir(repo().join(d)).expect("plugin dir"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|d| {
            manifest_in(d).is_some_and(|m| {
                std::fs::read_to_string(m).is_ok_and(|t| t.contains("kind = \"admission\""))
            })
        })
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_example_plugin_has_component_tests_and_they_pass() {
    let plugins = example_plugins();
    assert!(!plugins.is_empty(), "no example plugins found");
    for dir in plugins {
        let has_tests = std::fs::read_dir(dir.join("tests")).is_ok_and(|mut e| {
            e.any(|f| f.is_ok_and(|f| f.path().extension().is_some_and(|x| x == "yaml")))
        });
        assert!(
            has_tests,
            "{} has no component tests (tests/*.yaml)",
            dir.display()
        );
        let out = wasmlet(&["plugin", "test", &dir.to_string_lossy()]);
        assert!(out.status.success(), "{}:\n{}", dir.display(), text(&out));
        assert!(text(&out).contains(" passed, 0 failed"), "{}", text(&out));
    }
}

/// A folder of the test's own holding require-labels under each of `names`
/// (manifest and component), with an empty `tests/`.
fn require_labels_as(tag: &str, names: &[&str]) -> PathBuf {
    let example = repo().join("plugins/examples/require-labels");
    let dir = std::env::temp_dir().join(format!("wasmlet-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tests")).expect("dir");
    for name in names {
        std::fs::copy(
            example.join("require-labels.toml"),
            dir.join(format!("{name}.toml")),
        )
        .expect("manifest");
        std::fs::copy(
            example.join("require-labels.wasm"),
            dir.join(format!("{name}.wasm")),
        )
        .expect("component (built by scripts/build-plugins.sh)");
    }
    dir
}

#[test]
fn plugin_test_fails_on_a_wrong_expectation() {
    let dir = require_labels_as("mismatch", &["require-labels"]);
    std::fs::write(
        dir.join("tests/wrong.yaml"),
        "cases:\n  - name: claims an unlabelled pod is admitted\n    pod: {metadata: {name: x}, spec: {containers: [{name: a, image: b}]}}\n    expect: {admit: true}\n",
    )
    .expect("test file");
    let out = wasmlet(&["plugin", "test", &dir.to_string_lossy()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("FAIL  require-labels: claims an unlabelled pod is admitted"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("0 passed, 1 failed"), "{}", text(&out));
    // What was expected, and what came.
    assert!(
        text(&out).contains("expected admitted\n      got      rejected  MissingLabels: "),
        "{}",
        text(&out)
    );
}

#[test]
fn fixtures_belong_to_one_plugin_and_may_set_its_settings_per_case() {
    let dir = require_labels_as("owned", &["strict", "other"]);
    let case = |name: &str, labels: &str, settings: &str, expect: &str| {
        format!(
            "  - name: {name}\n    pod: {{metadata: {{name: x, labels: {{{labels}}}}}, spec: {{containers: [{{name: a, image: b}}]}}}}\n{settings}    expect: {expect}\n"
        )
    };
    // A folder of two plugins: a file must say which it tests.
    std::fs::write(
        dir.join("tests/unowned.yaml"),
        format!("cases:\n{}", case("c", "", "", "{admit: false}")),
    )
    .expect("test file");
    let out = wasmlet(&["plugin", "test", &dir.to_string_lossy()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unowned.yaml: plugin: required, the folder holds 2 plugins"),
        "{}",
        text(&out)
    );
    // Named, its cases run against that plugin alone, once each.
    std::fs::write(
        dir.join("tests/unowned.yaml"),
        format!(
            "plugin: strict\ncases:\n{}{}",
            case(
                "needs both labels",
                "app: web",
                "",
                "{admit: false, reason: MissingLabels}"
            ),
            case(
                "needs only app with its settings",
                "app: web",
                "    settings: {labels: [app]}\n",
                "{admit: true}"
            ),
        ),
    )
    .expect("test file");
    let out = wasmlet(&["plugin", "test", &dir.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 passed, 0 failed"), "{}", text(&out));
    assert!(!text(&out).contains("other:"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fixture_that_checks_nothing_or_holds_an_invalid_pod_is_refused() {
    let dir = require_labels_as("refused", &["require-labels"]);
    let cases = [
        (
            "pod: {metadata: {name: x}, spec: {containers: [{name: a, image: b}]}}\n    expect: {}",
            "case \"c\": expect: checks nothing",
        ),
        (
            "pod: {metadata: {name: x}, spec: {containers: []}}\n    expect: {admit: true}",
            "case \"c\": pod: spec.containers: Required value",
        ),
        (
            "pod: {metadata: {name: Not_A_Name}, spec: {containers: [{name: a, image: b}]}}\n    expect: {admit: true}",
            "case \"c\": pod: metadata.name",
        ),
        (
            "pod: {metadata: {name: x}, spec: {containers: [{name: a, image: b}]}}\n    expect: {admit: true, reason: Nope}",
            "a reason is a rejection's",
        ),
    ];
    for (case, says) in cases {
        std::fs::write(
            dir.join("tests/bad.yaml"),
            format!("cases:\n  - name: c\n    {case}\n"),
        )
        .expect("test file");
        let out = wasmlet(&["plugin", "test", &dir.to_string_lossy()]);
        assert!(!out.status.success(), "{case}: {}", text(&out));
        assert!(
            text(&out).contains("bad.yaml") && text(&out).contains(says),
            "{case}: {}",
            text(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plugin_run_prints_the_decision() {
    let examples = repo().join("plugins/examples");
    let manifest = examples.join("require-labels/require-labels.toml");
    let pod = examples.join("pods/unlabelled.yaml");
    let out = wasmlet(&[
        "plugin",
        "run",
        &manifest.to_string_lossy(),
        "--pod",
        &pod.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(1), "a rejection: {}", text(&out));
    assert!(
        text(&out).contains(
            "decision  rejected  MissingLabels: pod default/unlabelled lacks required labels: team"
        ),
        "{}",
        text(&out)
    );

    // A bare component with settings from a file.
    let settings =
        std::env::temp_dir().join(format!("wasmlet-cli-settings-{}.yaml", std::process::id()));
    std::fs::write(&settings, "labels: [app]\n").expect("settings");
    let wasm = examples.join("require-labels/require-labels.wasm");
    let out = wasmlet(&[
        "plugin",
        "run",
        &wasm.to_string_lossy(),
        "--kind",
        "admission",
        "--pod",
        &pod.to_string_lossy(),
        "--settings",
        &settings.to_string_lossy(),
    ]);
    let _ = std::fs::remove_file(&settings);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("decision  admitted"), "{}", text(&out));

    // In monitor mode the rejection is what it would be; the pod is admitted.
    let dir = std::env::temp_dir().join(format!("wasmlet-cli-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a folder");
    let monitored = dir.join("require-labels.toml");
    let original = std::fs::read_to_string(&manifest).expect("the manifest");
    std::fs::write(
        &monitored,
        format!(
            "component = {:?}\nmode = \"monitor\"\n{original}",
            wasm.to_string_lossy()
        ),
    )
    .expect("a monitor-mode manifest");
    let out = wasmlet(&[
        "plugin",
        "run",
        &monitored.to_string_lossy(),
        "--pod",
        &pod.to_string_lossy(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("decision  would reject  MissingLabels:"),
        "{}",
        text(&out)
    );
}

#[test]
fn plugin_inspect_shows_kind_version_imports_and_capabilities() {
    let wasm = repo().join("plugins/examples/require-labels/require-labels.wasm");
    let out = wasmlet(&["plugin", "inspect", &wasm.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    for want in [
        "kind          admission",
        "wit           wasmlet:plugin@0.1.0",
        "wasmlet:plugin/host@0.1.0",
        "capabilities  -",
        "deadline 100ms",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
}

#[test]
fn relative_paths_name_the_plugin_once() {
    // From the repository's root, as an operator types them.
    let run_here = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wasmlet"))
            .args(args)
            .current_dir(repo())
            .env(
                "WASMLET_PLUGIN_CACHE",
                std::env::temp_dir().join(format!("wasmlet-cli-cache-{}", std::process::id())),
            )
            .output()
            .expect("run wasmlet")
    };
    let manifest = "plugins/examples/require-labels/require-labels.toml";
    let out = run_here(&["plugin", "inspect", manifest]);
    assert!(out.status.success(), "{}", text(&out));
    let pod = "plugins/examples/pods/unlabelled.yaml";
    let out = run_here(&["plugin", "run", manifest, "--pod", pod]);
    assert!(text(&out).contains("decision  rejected"), "{}", text(&out));
    let settings = std::env::temp_dir().join(format!(
        "wasmlet-cli-relative-settings-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&settings, "labels: [team]\n").expect("settings");
    let wasm = "plugins/examples/require-labels/require-labels.wasm";
    let out = run_here(&[
        "plugin",
        "run",
        wasm,
        "--kind",
        "admission",
        "--pod",
        pod,
        "--settings",
        &settings.to_string_lossy(),
    ]);
    let _ = std::fs::remove_file(&settings);
    assert!(text(&out).contains("decision  rejected"), "{}", text(&out));
}

#[test]
fn bad_input_is_reported_with_the_file() {
    let missing = Path::new("/nonexistent/pod.yaml");
    let manifest = repo().join("plugins/examples/require-labels/require-labels.toml");
    let out = wasmlet(&[
        "plugin",
        "run",
        &manifest.to_string_lossy(),
        "--pod",
        &missing.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(2), "an error is neither verdict");
    assert!(
        text(&out).contains("/nonexistent/pod.yaml"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_guest_s_own_error_text_reaches_the_operator() {
    let pod = repo().join("plugins/examples/pods/unlabelled.yaml");
    for (plugin, says) in [
        (
            "plugins/testing/py-raise/py-raise.toml",
            "trapped: KeyError: 'team' (Python traceback: File ",
        ),
        (
            "plugins/testing/js-throw/js-throw.toml",
            "trapped: TypeError: ",
        ),
    ] {
        let out = wasmlet(&[
            "plugin",
            "run",
            &repo().join(plugin).to_string_lossy(),
            "--pod",
            &pod.to_string_lossy(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{plugin}: {}", text(&out));
        assert!(text(&out).contains(says), "{plugin}: {}", text(&out));
        // The language runtime's own hints are no help to the operator.
        assert!(!text(&out).contains("RUST_BACKTRACE"), "{}", text(&out));
        assert!(!text(&out).contains("mozalloc_abort"), "{}", text(&out));
    }
}

/// Builds the scaffold in `dir` with its language's tool (those
/// scripts/build-plugins.sh installs into target/).
fn build_scaffold(lang: &str, dir: &Path, name: &str) {
    let run = |command: &mut Command| {
        let out = command
            .current_dir(dir)
            .output()
            .expect("the build tool runs");
        assert!(out.status.success(), "{lang}: {command:?}:\n{}", text(&out));
    };
    match lang {
        "rust" => {
            run(Command::new("cargo")
                .args(["build", "--release", "--target", "wasm32-wasip2"])
                .env("CARGO_TARGET_DIR", repo().join("target/scaffold-rust")));
            let built = repo().join(format!(
                "target/scaffold-rust/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ));
            std::fs::copy(built, dir.join(format!("{name}.wasm"))).expect("the component");
        }
        "python" => run(
            Command::new(repo().join("target/py/bin/componentize-py")).args([
                "-d",
                "wit",
                "-w",
                "admission",
                "componentize",
                "app",
                "-p",
                ".",
                "-o",
                &format!("{name}.wasm"),
            ]),
        ),
        _ => run(
            Command::new(repo().join("target/js/node_modules/.bin/componentize-js")).args([
                "app.js",
                "--wit",
                "wit",
                "-n",
                "admission",
                "-d",
                "http",
                "fetch-event",
                "-o",
                &format!("{name}.wasm"),
            ]),
        ),
    }
}

#[test]
fn plugin_new_scaffolds_build_pass_their_tests_and_bench_in_each_language() {
    let parent = std::env::temp_dir().join(format!("wasmlet-cli-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).expect("dir");
    for lang in ["rust", "python", "js"] {
        let name = format!("scaffold-{lang}");
        let out = wasmlet(&[
            "plugin",
            "new",
            &name,
            "--lang",
            lang,
            "--dir",
            &parent.to_string_lossy(),
        ]);
        assert!(out.status.success(), "{lang}: {}", text(&out));
        let dir = parent.join(&name);
        build_scaffold(lang, &dir, &name);
        let out = wasmlet(&["plugin", "test", &dir.to_string_lossy()]);
        assert!(out.status.success(), "{lang}: {}", text(&out));
        assert!(text(&out).contains("3 passed, 0 failed"), "{}", text(&out));
        let out = wasmlet(&["plugin", "bench", &dir.to_string_lossy(), "--calls", "5"]);
        assert!(out.status.success(), "{lang}: {}", text(&out));
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.contains("instantiate (validate-settings)")
                && table.contains("a pod without it is rejected, naming it"),
            "{table}"
        );
        // Made once: the second time, the folder is there.
        let again = wasmlet(&[
            "plugin",
            "new",
            &name,
            "--lang",
            lang,
            "--dir",
            &parent.to_string_lossy(),
        ]);
        assert!(!again.status.success() && text(&again).contains("exists already"));
    }
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn plugin_compile_fills_the_cache_the_agent_loads_from() {
    let cache = std::env::temp_dir().join(format!("wasmlet-cli-compile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let wasm = repo().join("plugins/examples/require-labels/require-labels.wasm");
    let compile = || {
        Command::new(env!("CARGO_BIN_EXE_wasmlet"))
            .args(["plugin", "compile", &wasm.to_string_lossy()])
            .env("WASMLET_PLUGIN_CACHE", &cache)
            .output()
            .expect("run wasmlet")
    };
    let first = compile();
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains(": compiled in "), "{}", text(&first));
    let artifacts: Vec<_> = std::fs::read_dir(&cache)
        .expect("the cache")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "one artifact");
    let second = compile();
    assert!(
        text(&second).contains(": already compiled; loads in "),
        "{}",
        text(&second)
    );
    // No cache to fill: said so.
    let none = Command::new(env!("CARGO_BIN_EXE_wasmlet"))
        .args([
            "--plugin-cache",
            "",
            "plugin",
            "compile",
            &wasm.to_string_lossy(),
        ])
        .output()
        .expect("run wasmlet");
    assert!(
        !none.status.success() && text(&none).contains("no compile cache"),
        "{}",
        text(&none)
    );
    let _ = std::fs::remove_dir_all(&cache);
}
