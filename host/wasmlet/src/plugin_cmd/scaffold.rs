//! `wasmlet plugin new --lang rust|python|js NAME`: a plugin folder that
//! builds with the language's own tool and passes its own component tests:
//! an admission plugin requiring the labels its settings list, its manifest,
//! its tests, the WIT it is built against (this wasmlet's), and how to build.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// This wasmlet's WIT, as a plugin is built against it.
const WIT: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../../../wit/types.wit")),
    ("worlds.wit", include_str!("../../../../wit/worlds.wit")),
    (
        "deps/cli/cli.wit",
        include_str!("../../../../wit/deps/cli/cli.wit"),
    ),
    (
        "deps/clocks/clocks.wit",
        include_str!("../../../../wit/deps/clocks/clocks.wit"),
    ),
    (
        "deps/filesystem/filesystem.wit",
        include_str!("../../../../wit/deps/filesystem/filesystem.wit"),
    ),
    (
        "deps/http/http.wit",
        include_str!("../../../../wit/deps/http/http.wit"),
    ),
    (
        "deps/io/io.wit",
        include_str!("../../../../wit/deps/io/io.wit"),
    ),
    (
        "deps/random/random.wit",
        include_str!("../../../../wit/deps/random/random.wit"),
    ),
    (
        "deps/sockets/sockets.wit",
        include_str!("../../../../wit/deps/sockets/sockets.wit"),
    ),
];

const MANIFEST: &str = include_str!("scaffold/manifest.toml");
const TESTS: &str = include_str!("scaffold/tests.yaml");
const RUST_LIB: &str = include_str!("scaffold/lib.rs.txt");
const PYTHON_APP: &str = include_str!("scaffold/app.py");
const JS_APP: &str = include_str!("scaffold/app.js");

/// The files of a `lang` plugin named `name`, and how to build it.
fn files(lang: Lang, name: &str) -> (Vec<(String, String)>, String) {
    let fill = |text: &str, memory: u32, lang_name: &str| {
        text.replace("{{NAME}}", name)
            .replace("{{LANG}}", lang_name)
            .replace("{{MEMORY}}", &memory.to_string())
    };
    let mut files = vec![(format!("tests/{name}.yaml"), fill(TESTS, 0, ""))];
    files.extend(
        WIT.iter()
            .map(|(path, text)| (format!("wit/{path}"), (*text).to_owned())),
    );
    let build = match lang {
        Lang::Rust => {
            files.push((format!("{name}.toml"), fill(MANIFEST, 16, "Rust")));
            files.push(("src/lib.rs".into(), fill(RUST_LIB, 0, "")));
            files.push((
                "Cargo.toml".into(),
                format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nwit-bindgen = \"0.63\"\nserde_json = \"1\"\n\n[profile.release]\nopt-level = \"s\"\nstrip = true\n"
                ),
            ));
            format!(
                "rustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2\ncp target/wasm32-wasip2/release/{}.wasm {name}.wasm",
                name.replace('-', "_")
            )
        }
        Lang::Python => {
            files.push((format!("{name}.toml"), fill(MANIFEST, 128, "Python")));
            files.push(("app.py".into(), fill(PYTHON_APP, 0, "")));
            format!(
                "pip install componentize-py==0.25.1\ncomponentize-py -d wit -w admission componentize app -p . -o {name}.wasm"
            )
        }
        Lang::Js => {
            files.push((format!("{name}.toml"), fill(MANIFEST, 128, "JavaScript")));
            files.push(("app.js".into(), fill(JS_APP, 0, "")));
            format!(
                "npm install @bytecodealliance/componentize-js@0.23.0 @bytecodealliance/preview2-shim@0.25.0\nnpx componentize-js app.js --wit wit -n admission -d http fetch-event -o {name}.wasm"
            )
        }
    };
    let readme = format!(
        "# {name}\n\nA wasmlet admission plugin: pods must carry the labels its settings list.\n\nBuild it:\n\n```sh\n{build}\n```\n\nTest it, time it, and compile it for the agent's cache:\n\n```sh\nwasmlet plugin test .\nwasmlet plugin bench .\nwasmlet plugin compile {name}.wasm\n```\n\nThen copy `{name}.toml` and `{name}.wasm` into the agent's plugin directory.\n"
    );
    files.push(("README.md".into(), readme));
    (files, build)
}

/// A plugin name is a manifest's file name: a DNS label.
fn check_name(name: &str) -> anyhow::Result<()> {
    wasmlet_rules::identity::dns_label(name)
        .map_err(|e| anyhow::anyhow!("NAME {name:?}: {e} (lower-case letters, digits and '-')"))
}

pub(super) fn new(lang: Lang, name: &str, parent: &Path) -> anyhow::Result<ExitCode> {
    check_name(name)?;
    let dir: PathBuf = parent.join(name);
    if dir.exists() {
        bail!("{} exists already", dir.display());
    }
    let (files, build) = files(lang, name);
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {}; build it there with:\n{build}", dir.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaffold_carries_its_name_the_wit_and_its_build() {
        let (files, build) = files(Lang::Rust, "team-labels");
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        for expected in [
            "team-labels.toml",
            "src/lib.rs",
            "Cargo.toml",
            "tests/team-labels.yaml",
            "wit/worlds.wit",
            "wit/deps/http/http.wit",
            "README.md",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        assert!(
            build.contains("team_labels.wasm team-labels.wasm"),
            "{build}"
        );
        assert!(files.iter().all(|(_, text)| !text.contains("{{")));
        assert!(check_name("Team_Labels").is_err());
    }
}
