//! Loading a plugin directory: bad plugins are reported and skipped, the rest load.

mod support;

use std::collections::BTreeMap;

use support::{Harness, manifest, wasm};
use wasmlet_plugin_host::{LoadError, PluginEngine, PluginSet};

#[tokio::test]
async fn one_bad_plugin_never_stops_the_others() {
    let h = Harness::new("dir");
    let good = wasm("require_labels");
    manifest(
        &h.dir,
        "good",
        &good,
        "kind = \"admission\"\nwit = \"0.1.0\"\n[settings]\nlabels = [\"app\"]\n",
    );
    manifest(
        &h.dir,
        "no-component",
        &h.dir.join("absent.wasm"),
        "kind = \"admission\"\nwit = \"0.1.0\"\n",
    );
    std::fs::write(h.dir.join("broken.toml"), "kind = \"admission\"\nwit = 3\n").expect("write");
    manifest(
        &h.dir,
        "pinned",
        &good,
        &format!(
            "kind = \"admission\"\nwit = \"0.1.0\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        ),
    );
    manifest(
        &h.dir,
        "unset",
        &good,
        "kind = \"admission\"\nwit = \"0.1.0\"\n",
    );
    std::fs::write(h.dir.join(".hidden.toml"), "garbage").expect("write");

    let set = PluginSet::load_dir(&h.engine, &h.host, &h.metrics, &h.dir, &BTreeMap::new())
        .await
        .expect("directory readable");
    let loaded: Vec<&str> = set.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(loaded, vec!["good"]);
    assert_eq!(set.skipped.len(), 4, "{:#?}", set.skipped);

    let reasons: Vec<String> = set.skipped.iter().map(ToString::to_string).collect();
    let find = |needle: &str| reasons.iter().find(|r| r.contains(needle)).cloned();
    assert!(
        set.skipped
            .iter()
            .any(|e| matches!(e.error, LoadError::Read { .. }))
    );
    assert!(find("absent.wasm: cannot read").is_some(), "{reasons:#?}");
    assert!(
        find("broken.toml: invalid manifest").is_some_and(|r| r.contains("wit")),
        "{reasons:#?}"
    );
    assert!(find("but the manifest pins").is_some(), "{reasons:#?}");
    assert!(
        find("rejected its settings")
            .is_some_and(|r| r.contains("plugin unset: validate-settings: invalid settings")),
        "{reasons:#?}"
    );

    let table = set.table();
    assert!(
        table.contains("good                     admission   0.1.0   closed"),
        "{table}"
    );
    assert!(table.contains("skipped: "), "{table}");
}

#[tokio::test]
async fn compiled_components_are_cached_by_digest_and_reused() {
    let h = Harness::new("cache");
    let cache = h.dir.join("cache");
    let engine = std::sync::Arc::new(PluginEngine::new(Some(cache.clone())).expect("engine"));
    let path = manifest(
        &h.dir,
        "cached",
        &wasm("require_labels"),
        "kind = \"admission\"\nwit = \"0.1.0\"\n[settings]\nlabels = [\"app\"]\n",
    );

    let first = wasmlet_plugin_host::Plugin::load(&engine, &h.host, &h.metrics, &path, None)
        .await
        .expect("load");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(entries.len(), 1);
    let name = entries[0].file_name().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&first.digest),
        "{name} is keyed by the wasm digest"
    );
    let written = entries[0]
        .metadata()
        .expect("meta")
        .modified()
        .expect("mtime");

    let second = wasmlet_plugin_host::Plugin::load(&engine, &h.host, &h.metrics, &path, None)
        .await
        .expect("load again");
    assert_eq!(second.digest, first.digest);
    let again = std::fs::metadata(entries[0].path())
        .expect("meta")
        .modified()
        .expect("mtime");
    assert_eq!(
        written, again,
        "the cached artifact was reused, not rewritten"
    );
    assert!(
        second
            .admit(&support::pod("p", &[("app", "x")]), &support::node(), &[])
            .await
            .expect("admit")
            .admit
    );
}
