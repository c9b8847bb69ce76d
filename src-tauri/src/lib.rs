//! The thin Tauri adapter: a few commands, each a few lines, and (later) one
//! bridge from the core's event stream to one typed UI event. Everything real
//! lives in `crates/core`; nothing here owns sockets, audio or call state.

use serde::Serialize;

/// What the UI needs to know about the running app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    /// The app's semantic version, from Cargo.toml.
    pub version: &'static str,
}

/// Returns the app's version; the UI shows it and the smoke test checks it.
#[tauri::command]
fn app_info() -> AppInfo {
    AppInfo {
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// Registers the commands on a builder. Generic over the runtime so tests
/// can run the real setup on Tauri's mock runtime.
pub fn setup<R: tauri::Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![app_info])
}

/// Starts the desktop app.
pub fn run() {
    if let Err(err) = setup(tauri::Builder::default()).run(tauri::generate_context!()) {
        eprintln!("voicemeet: the app could not start: {err}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tauri::test::{INVOKE_KEY, get_ipc_response, mock_builder};
    use tauri::webview::InvokeRequest;

    fn invoke(cmd: &str) -> Result<serde_json::Value, serde_json::Value> {
        // The real config and capabilities, on the mock runtime.
        let app = setup(mock_builder())
            .build(tauri::generate_context!())
            .expect("the mock app builds");
        let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("the mock webview builds");
        get_ipc_response(
            &webview,
            InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().expect("a valid URL"),
                body: tauri::ipc::InvokeBody::default(),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|body| body.deserialize::<serde_json::Value>().expect("JSON body"))
    }

    #[test]
    fn app_info_is_registered_and_answers_with_the_crate_version() {
        let body = invoke("app_info").expect("app_info answers");
        assert_eq!(
            body,
            serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })
        );
    }

    #[test]
    fn unknown_commands_are_refused() {
        assert!(invoke("no_such_command").is_err());
    }
}
