//! What a guest said on stderr before it trapped, in the words of its own
//! language: a Python traceback (componentize-py prints it, then its Rust
//! runtime panics), a JavaScript exception (componentize-js fails to turn it
//! into the WIT error and aborts), a Rust panic's message and place. The
//! language runtimes' own lines after the fact (`note: run with
//! RUST_BACKTRACE=1`, `Redirecting call to abort()`) are left out: they
//! describe the runtime, not the plugin.

/// The guest's account of its failure, if it gave one.
pub(crate) fn last_words(stderr: &str) -> Option<String> {
    python(stderr)
        .or_else(|| javascript(stderr))
        .or_else(|| rust_panic(stderr))
        .or_else(|| last_lines(stderr))
}

/// Lines of the language runtimes, never the plugin's.
fn is_noise(line: &str) -> bool {
    line.starts_with("note: run with `RUST_BACKTRACE=1`")
        || line.starts_with("Redirecting call to abort()")
        || line == "Python function threw an unexpected exception"
        || (line.starts_with("thread '") && line.contains("panicked at runtime/src/"))
}

fn lines(text: &str) -> impl DoubleEndedIterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// `KeyError: 'team' (Python traceback: File "/0/app.py", line 10, in admit)`.
fn python(stderr: &str) -> Option<String> {
    const START: &str = "Traceback (most recent call last):";
    let at = stderr.rfind(START)?;
    let block: Vec<&str> = stderr[at + START.len()..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let (exception, frames) = block.split_last()?;
    let frames: Vec<&str> = frames
        .iter()
        .copied()
        // The caret lines under a frame's source line say nothing in one line.
        .filter(|l| !l.chars().all(|c| matches!(c, '~' | '^' | ' ')))
        .collect();
    Some(if frames.is_empty() {
        (*exception).to_owned()
    } else {
        format!("{exception} (Python traceback: {})", frames.join(" | "))
    })
}

/// `TypeError: can't access property "field", missing is undefined`.
fn javascript(stderr: &str) -> Option<String> {
    // componentize-js: an exception where the WIT error was due.
    if let Some(at) = stderr.find("(received `") {
        let rest = &stderr[at + "(received `".len()..];
        if let Some(end) = rest.find("`)") {
            return Some(format!("{} (uncaught JavaScript exception)", &rest[..end]));
        }
    }
    // StarlingMonkey: the error's line, then its stack.
    let all: Vec<&str> = lines(stderr).collect();
    let stack = all.iter().position(|l| *l == "Stack:")?;
    let message = all.get(stack.checked_sub(1)?)?;
    let frame = all
        .get(stack + 1)
        .map_or(String::new(), |f| format!(" at {f}"));
    Some(format!("{message}{frame}"))
}

/// `index out of bounds ... (panicked at src/lib.rs:10:5)`.
fn rust_panic(stderr: &str) -> Option<String> {
    let all: Vec<&str> = lines(stderr).filter(|l| !is_noise(l)).collect();
    let at = all
        .iter()
        .rposition(|l| l.starts_with("thread '") && l.contains(" panicked at "))?;
    let place = all[at]
        .split_once(" panicked at ")
        .map_or("", |(_, p)| p.trim_end_matches(':'));
    let message = all.get(at + 1).copied().unwrap_or("panicked");
    Some(format!("{message} (panicked at {place})"))
}

fn last_lines(stderr: &str) -> Option<String> {
    let all: Vec<&str> = lines(stderr).filter(|l| !is_noise(l)).collect();
    let tail = all[all.len().saturating_sub(2)..].join(" ");
    (!tail.is_empty()).then_some(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_python_traceback_is_its_exception_and_frames() {
        // As componentize-py 0.25 prints it.
        let stderr = "Traceback (most recent call last):\n  File \"/0/app.py\", line 10, in admit\n    return labels[\"team\"]\n           ~~~~~~^^^^^^^^\nKeyError: 'team'\n\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            last_words(stderr).as_deref(),
            Some(
                "KeyError: 'team' (Python traceback: File \"/0/app.py\", line 10, in admit | return labels[\"team\"])"
            )
        );
    }

    #[test]
    fn a_javascript_exception_is_its_message() {
        // As componentize-js 0.23 prints it.
        let stderr = "invalid variant tag value `undefined` (received `TypeError: can't access property \"field\", missing is undefined`) specified for `Error`\nStack:\n  export_admissionHandler_0_1_0$admit@/tmp/x/sources/initializer.js:1309:17\n\nRedirecting call to abort() to mozalloc_abort\n\n";
        assert_eq!(
            last_words(stderr).as_deref(),
            Some(
                "TypeError: can't access property \"field\", missing is undefined (uncaught JavaScript exception)"
            )
        );
        let starling = "Error: boom\nStack:\n  admit@app.js:3:11\n";
        assert_eq!(
            last_words(starling).as_deref(),
            Some("Error: boom at admit@app.js:3:11")
        );
    }

    #[test]
    fn a_rust_panic_is_its_message_and_place() {
        let stderr = "thread '<unnamed>' panicked at src/lib.rs:12:9:\nattempt to divide by zero\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            last_words(stderr).as_deref(),
            Some("attempt to divide by zero (panicked at src/lib.rs:12:9)")
        );
        assert_eq!(
            last_words("one\ntwo\nthree\n").as_deref(),
            Some("two three")
        );
        assert_eq!(last_words("\n"), None);
    }
}
