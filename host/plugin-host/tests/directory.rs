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

#[tokio::test]
async fn the_compile_cache_is_trusted_only_when_only_the_agent_may_write_it() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::new("cache-trust");
    let path = manifest(
        &h.dir,
        "cached",
        &wasm("require_labels"),
        "kind = \"admission\"\nwit = \"0.1.0\"\n[settings]\nlabels = [\"app\"]\n",
    );
    let load = |cache: &std::path::Path| {
        let engine =
            std::sync::Arc::new(PluginEngine::new(Some(cache.to_path_buf())).expect("engine"));
        let (host, metrics, path) = (h.host.clone(), h.metrics.clone(), path.clone());
        async move {
            wasmlet_plugin_host::Plugin::load(&engine, &host, &metrics, &path, None)
                .await
                .expect("loads, cache or not")
        }
    };
    let entries = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };

    // A directory others may write is not used at all.
    let open = h.dir.join("open");
    std::fs::create_dir_all(&open).expect("dir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    load(&open).await;
    assert!(entries(&open).is_empty(), "nothing written into {open:?}");

    // A missing one is created private, and written.
    let private = h.dir.join("private");
    load(&private).await;
    let mode = std::fs::metadata(&private)
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let written = entries(&private);
    assert_eq!(written.len(), 1, "{written:?}");
    let entry = &written[0];
    assert_eq!(
        std::fs::metadata(entry)
            .expect("entry")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // A corrupt entry is compiled again and replaced.
    let good = std::fs::read(entry).expect("entry");
    std::fs::write(entry, b"not compiled code").expect("corrupt");
    load(&private).await;
    assert_eq!(std::fs::read(entry).expect("entry").len(), good.len());

    // An entry others may write is not loaded; a fresh one replaces it.
    std::fs::write(entry, b"planted").expect("plant");
    std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    load(&private).await;
    let meta = std::fs::metadata(entry).expect("entry");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len() as usize, good.len());
    assert_eq!(entries(&private).len(), 1, "no temp files left");
}
