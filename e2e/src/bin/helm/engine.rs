//! The Helm engine: `libhelm_sdkpy.so`, the C-ABI build of the real Helm v4 Go library
//! that ships inside the PyPI wheel `helm-sdkpy` (installed by `scripts/helm-engine.sh`),
//! loaded at run time and wrapped in a safe API.
//!
//! The C contract (from the wheel's header and its cffi bindings, confirmed by probing):
//! - every action returns an `int`: 0 on success, -1 on a failure, -2 when the named
//!   release does not exist;
//! - on success, a `char **result_json` out-parameter receives a `malloc`ed
//!   NUL-terminated string that the caller must release with `helm_sdkpy_free`;
//! - on failure, `helm_sdkpy_last_error()` returns the message from a slot local to the
//!   calling OS thread. The library owns it (it is replaced by the thread's next failing
//!   call), so it is copied at once and never freed;
//! - a configuration is an opaque handle from `helm_sdkpy_config_create`, released with
//!   `helm_sdkpy_config_destroy`.
//!
//! Everything here runs on the thread that calls it; the executable calls the engine
//! from its main thread only, which keeps the thread-local error slot meaningful.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, NulError, c_char, c_int, c_ulonglong, c_void};
use std::path::{Path, PathBuf};
use std::ptr;

use serde_json::Value;

/// The name of the library file, both in the wheel and in the cache.
pub const LIBRARY_FILE: &str = "libhelm_sdkpy.so";

/// `helm_sdkpy_handle`: `typedef unsigned long long`.
type Handle = c_ulonglong;

type ConfigCreateFn = unsafe extern "C" fn(
    namespace: *const c_char,
    kubeconfig: *const c_char,
    kubecontext: *const c_char,
    options_json: *const c_char,
    handle_out: *mut Handle,
) -> c_int;
type ConfigDestroyFn = unsafe extern "C" fn(handle: Handle);
/// `helm_sdkpy_install` and `helm_sdkpy_upgrade` share this shape.
type ReleaseActionFn = unsafe extern "C" fn(
    handle: Handle,
    release_name: *const c_char,
    chart_path: *const c_char,
    values_json: *const c_char,
    version: *const c_char,
    options_json: *const c_char,
    result_json: *mut *mut c_char,
) -> c_int;
type UninstallFn = unsafe extern "C" fn(
    handle: Handle,
    release_name: *const c_char,
    wait: c_int,
    timeout_seconds: c_int,
    result_json: *mut *mut c_char,
) -> c_int;
type ListFn =
    unsafe extern "C" fn(handle: Handle, all: c_int, result_json: *mut *mut c_char) -> c_int;
/// `helm_sdkpy_status` and `helm_sdkpy_history` share this shape.
type ReleaseQueryFn = unsafe extern "C" fn(
    handle: Handle,
    release_name: *const c_char,
    result_json: *mut *mut c_char,
) -> c_int;
/// `helm_sdkpy_get_values` (all_values); `helm_sdkpy_rollback` (revision) has the same
/// shape but is not used: it is broken in 0.1.32 (see rollback.rs).
type ReleaseIntFn = unsafe extern "C" fn(
    handle: Handle,
    release_name: *const c_char,
    arg: c_int,
    result_json: *mut *mut c_char,
) -> c_int;
type LastErrorFn = unsafe extern "C" fn() -> *const c_char;
type FreeFn = unsafe extern "C" fn(ptr: *mut c_void);

/// The return code with which the engine says "release: not found".
const ERR_RELEASE_NOT_FOUND: c_int = -2;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "the Helm engine library is missing at {path}: run scripts/helm-engine.sh to install it (or point STRATA_HELM_LIB at a libhelm_sdkpy.so)"
    )]
    Missing { path: PathBuf },
    #[error("cannot load the Helm engine library {path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: libloading::Error,
    },
    #[error("the Helm engine library {path} does not export {symbol}: {source}")]
    Symbol {
        path: PathBuf,
        symbol: &'static str,
        #[source]
        source: libloading::Error,
    },
    #[error("{what} contains a NUL byte, which cannot be passed to the Helm engine")]
    Nul {
        what: &'static str,
        #[source]
        source: NulError,
    },
    /// The engine reported that the release does not exist (return code -2).
    #[error("{message}")]
    ReleaseNotFound { message: String },
    /// Any other failure the engine reported; the message is the engine's own.
    #[error("{message}")]
    Failed { message: String },
    #[error("the Helm engine's {action} returned success but no result")]
    NoResult { action: &'static str },
    #[error("the Helm engine's {action} returned text that is not UTF-8")]
    NotUtf8 { action: &'static str },
    #[error("the Helm engine's {action} returned JSON that cannot be parsed: {source}")]
    BadJson {
        action: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl EngineError {
    pub fn is_release_not_found(&self) -> bool {
        matches!(self, Self::ReleaseNotFound { .. })
    }
}

/// Where the library is looked for: `$STRATA_HELM_LIB`, else the cache that
/// `scripts/helm-engine.sh` fills.
pub fn default_library_path() -> PathBuf {
    if let Some(path) = std::env::var_os("STRATA_HELM_LIB").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let cache = match std::env::var_os("STRATA_CACHE_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            // As the script's ${STRATA_CACHE_DIR:-$HOME/.cache/strata}; with no home at
            // all the path is relative and the "missing library" error shows it.
            let home = std::env::home_dir().unwrap_or_default();
            home.join(".cache").join("strata")
        }
    };
    cache.join("helm-sdkpy").join(LIBRARY_FILE)
}

/// The loaded engine: the library's entry points.
pub struct Engine {
    config_create: ConfigCreateFn,
    config_destroy: ConfigDestroyFn,
    install: ReleaseActionFn,
    upgrade: ReleaseActionFn,
    uninstall: UninstallFn,
    list: ListFn,
    status: ReleaseQueryFn,
    history: ReleaseQueryFn,
    get_values: ReleaseIntFn,
    last_error: LastErrorFn,
    free: FreeFn,
}

impl Engine {
    /// Loads the library and resolves every entry point this executable uses.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        if !path.exists() {
            return Err(EngineError::Missing {
                path: path.to_path_buf(),
            });
        }
        // SAFETY: loading runs the library's initialisers, which start the Go runtime;
        // that is what the library is built for (a cgo c-shared library) and it has no
        // other preconditions.
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|source| EngineError::Load {
                path: path.to_path_buf(),
                source,
            })?;
        // A Go runtime cannot be unloaded (dlclose of a c-shared Go library crashes), so
        // the library lives as long as the process. That also makes every function
        // pointer resolved below valid for 'static.
        let library: &'static libloading::Library = Box::leak(Box::new(library));

        macro_rules! resolve {
            ($name:literal, $ty:ty) => {{
                // SAFETY: the symbol is one of the library's exported functions and $ty is
                // its C signature as declared in the wheel's libhelm_sdkpy.h.
                let symbol = unsafe { library.get::<$ty>(concat!($name, "\0").as_bytes()) };
                *symbol.map_err(|source| EngineError::Symbol {
                    path: path.to_path_buf(),
                    symbol: $name,
                    source,
                })?
            }};
        }

        Ok(Self {
            config_create: resolve!("helm_sdkpy_config_create", ConfigCreateFn),
            config_destroy: resolve!("helm_sdkpy_config_destroy", ConfigDestroyFn),
            install: resolve!("helm_sdkpy_install", ReleaseActionFn),
            upgrade: resolve!("helm_sdkpy_upgrade", ReleaseActionFn),
            uninstall: resolve!("helm_sdkpy_uninstall", UninstallFn),
            list: resolve!("helm_sdkpy_list", ListFn),
            status: resolve!("helm_sdkpy_status", ReleaseQueryFn),
            history: resolve!("helm_sdkpy_history", ReleaseQueryFn),
            get_values: resolve!("helm_sdkpy_get_values", ReleaseIntFn),
            last_error: resolve!("helm_sdkpy_last_error", LastErrorFn),
            free: resolve!("helm_sdkpy_free", FreeFn),
        })
    }

    /// Creates a configuration: the engine's `action.Configuration` for one namespace of
    /// one cluster. `kubeconfig` is a file path (the engine would also take YAML text);
    /// `None` lets the engine pick (in-cluster service account, else `$KUBECONFIG`).
    pub fn configure(
        &self,
        namespace: Option<&str>,
        kubeconfig: Option<&str>,
        kube_context: Option<&str>,
    ) -> Result<Config<'_>, EngineError> {
        let namespace = cstring("the namespace", namespace.unwrap_or(""))?;
        let kubeconfig = kubeconfig
            .map(|k| cstring("the kubeconfig path", k))
            .transpose()?;
        let kube_context = kube_context
            .map(|k| cstring("the kube context", k))
            .transpose()?;
        let options = cstring("the options", "{}")?;
        let mut handle: Handle = 0;
        // SAFETY: every pointer is either NULL (which the engine reads as "not given") or
        // a live NUL-terminated string owned by this frame; `handle` is a valid place for
        // the engine to write to. The engine copies the strings before returning.
        let rc = unsafe {
            (self.config_create)(
                namespace.as_ptr(),
                kubeconfig.as_ref().map_or(ptr::null(), |k| k.as_ptr()),
                kube_context.as_ref().map_or(ptr::null(), |k| k.as_ptr()),
                options.as_ptr(),
                &mut handle,
            )
        };
        self.check(rc)?;
        Ok(Config {
            engine: self,
            handle,
        })
    }

    /// Turns a return code into a result, reading the thread's error message on failure.
    fn check(&self, rc: c_int) -> Result<(), EngineError> {
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: takes no arguments; returns NULL or a pointer into the calling thread's
        // error slot, which stays valid until this thread's next engine call.
        let message_ptr = unsafe { (self.last_error)() };
        let message = if message_ptr.is_null() {
            format!("the Helm engine failed (code {rc}) without a message")
        } else {
            // SAFETY: non-NULL, NUL-terminated, and not yet replaced (no engine call has
            // happened on this thread since). Copied at once; the library keeps ownership.
            unsafe { CStr::from_ptr(message_ptr) }
                .to_string_lossy()
                .into_owned()
        };
        if rc == ERR_RELEASE_NOT_FOUND {
            Err(EngineError::ReleaseNotFound { message })
        } else {
            Err(EngineError::Failed { message })
        }
    }

    /// Takes ownership of a string the engine returned: copies it, then frees it.
    fn take_result(&self, action: &'static str, raw: *mut c_char) -> Result<String, EngineError> {
        if raw.is_null() {
            return Err(EngineError::NoResult { action });
        }
        let owned = EngineString {
            engine: self,
            ptr: raw,
        };
        owned.to_string(action)
    }
}

/// A string the engine allocated; freed with `helm_sdkpy_free` when dropped, so it is
/// released on every path, including a failed UTF-8 conversion.
struct EngineString<'e> {
    engine: &'e Engine,
    ptr: *mut c_char,
}

impl EngineString<'_> {
    fn to_string(&self, action: &'static str) -> Result<String, EngineError> {
        // SAFETY: `ptr` is non-NULL (checked by the only constructor's caller) and points
        // to the NUL-terminated string the engine just returned, which is freed only in
        // `drop`, after this borrow ends.
        let text = unsafe { CStr::from_ptr(self.ptr) };
        text.to_str()
            .map(str::to_owned)
            .map_err(|_| EngineError::NotUtf8 { action })
    }
}

impl Drop for EngineString<'_> {
    fn drop(&mut self) {
        // SAFETY: the engine allocated `ptr` with malloc for this caller and documents
        // `helm_sdkpy_free` as the way to release it; it is freed exactly once, here.
        unsafe { (self.engine.free)(self.ptr.cast::<c_void>()) };
    }
}

/// Options of install and upgrade that map onto the engine's `options_json`.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub create_namespace: bool,
    pub wait: bool,
    pub timeout_seconds: u64,
}

/// Upgrade-only options of the engine's `options_json`.
#[derive(Debug, Clone)]
pub struct UpgradeMode {
    /// Install when the release does not exist or was uninstalled (replacing it).
    pub install: bool,
    /// "true", "false", or "auto" (the method the release was installed with).
    pub server_side_apply: &'static str,
    /// Start from the chart's default values, not the release's current ones.
    pub reset_values: bool,
    pub skip_schema_validation: bool,
    /// Server-side apply takes fields other managers changed (`--force-conflicts`).
    pub force_conflicts: bool,
}

impl UpgradeMode {
    /// `helm upgrade [--install]` with helm's defaults.
    pub fn helm(install: bool) -> Self {
        Self {
            install,
            server_side_apply: "auto",
            reset_values: false,
            skip_schema_validation: false,
            force_conflicts: false,
        }
    }
}

/// One configuration handle; destroyed on drop.
pub struct Config<'e> {
    engine: &'e Engine,
    handle: Handle,
}

impl Drop for Config<'_> {
    fn drop(&mut self) {
        // SAFETY: `handle` came from a successful `helm_sdkpy_config_create` and is
        // destroyed exactly once, here.
        unsafe { (self.engine.config_destroy)(self.handle) };
    }
}

impl Config<'_> {
    /// `helm install`: a fresh release.
    pub fn install(
        &self,
        release: &str,
        chart_path: &str,
        values: &Value,
        version: Option<&str>,
        options: &ReleaseOptions,
    ) -> Result<Value, EngineError> {
        let opts = serde_json::json!({
            "create_namespace": options.create_namespace,
            "wait": options.wait,
            "timeout_seconds": options.timeout_seconds,
            // helm v4's CLI defaults (`--server-side=true`, OpenAPI validation on); the
            // engine's own defaults differ.
            "disable_openapi_validation": false,
            "server_side_apply": "true",
        });
        self.release_action(
            "install",
            self.engine.install,
            release,
            chart_path,
            values,
            version,
            &opts,
        )
    }

    /// An install for `helm template`, into the fake API server of fake_cluster.rs:
    /// nothing waits, nothing is validated against an OpenAPI schema the fake does not
    /// serve, and objects are created with plain POSTs, which the fake echoes.
    pub fn render(
        &self,
        release: &str,
        chart_path: &str,
        values: &Value,
        version: Option<&str>,
    ) -> Result<Value, EngineError> {
        let opts = serde_json::json!({
            "create_namespace": false,
            "wait": false,
            "timeout_seconds": 60,
            "disable_openapi_validation": true,
            "server_side_apply": "false",
        });
        self.release_action(
            "install",
            self.engine.install,
            release,
            chart_path,
            values,
            version,
            &opts,
        )
    }

    /// `helm upgrade`.
    pub fn upgrade(
        &self,
        release: &str,
        chart_path: &str,
        values: &Value,
        version: Option<&str>,
        mode: &UpgradeMode,
        options: &ReleaseOptions,
    ) -> Result<Value, EngineError> {
        let opts = serde_json::json!({
            "install": mode.install,
            "create_namespace": options.create_namespace,
            "wait": options.wait,
            "timeout_seconds": options.timeout_seconds,
            "disable_openapi_validation": false,
            "server_side_apply": mode.server_side_apply,
            "reset_values": mode.reset_values,
            "skip_schema_validation": mode.skip_schema_validation,
            "force_conflicts": mode.force_conflicts,
            // The helm CLI's --max-history default.
            "max_history": 10,
        });
        self.release_action(
            "upgrade",
            self.engine.upgrade,
            release,
            chart_path,
            values,
            version,
            &opts,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn release_action(
        &self,
        action: &'static str,
        function: ReleaseActionFn,
        release: &str,
        chart_path: &str,
        values: &Value,
        version: Option<&str>,
        options: &Value,
    ) -> Result<Value, EngineError> {
        let release = cstring("the release name", release)?;
        let chart_path = cstring("the chart path", chart_path)?;
        // The engine reads "" as "no values" (an empty object is the same to Helm).
        let values = match values {
            Value::Object(map) if map.is_empty() => String::new(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let values = cstring("the values", &values)?;
        let version = cstring("the chart version", version.unwrap_or(""))?;
        let options = cstring("the options", &options.to_string())?;
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: all string pointers are live NUL-terminated strings owned by this frame
        // (the engine copies them); `out` is a valid place for the engine's result
        // pointer, which `take_result` frees.
        let rc = unsafe {
            function(
                self.handle,
                release.as_ptr(),
                chart_path.as_ptr(),
                values.as_ptr(),
                version.as_ptr(),
                options.as_ptr(),
                &mut out,
            )
        };
        self.finish(action, rc, out)
    }

    /// `helm uninstall`; returns the engine's `UninstallReleaseResponse` JSON.
    pub fn uninstall(
        &self,
        release: &str,
        wait: bool,
        timeout_seconds: u64,
    ) -> Result<Value, EngineError> {
        let release = cstring("the release name", release)?;
        let timeout = c_int::try_from(timeout_seconds).unwrap_or(c_int::MAX);
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: `release` is a live NUL-terminated string; `out` receives the result,
        // which `finish` frees.
        let rc = unsafe {
            (self.engine.uninstall)(
                self.handle,
                release.as_ptr(),
                c_int::from(wait),
                timeout,
                &mut out,
            )
        };
        self.finish("uninstall", rc, out)
    }

    /// `helm list`: the releases of this configuration's namespace; `all` includes every
    /// state, not only deployed and failed ones.
    pub fn list(&self, all: bool) -> Result<Value, EngineError> {
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: `out` receives the result, which `finish` frees.
        let rc = unsafe { (self.engine.list)(self.handle, c_int::from(all), &mut out) };
        self.finish("list", rc, out)
    }

    /// `helm status`: the release's latest revision as the engine's Release JSON.
    pub fn status(&self, release: &str) -> Result<Value, EngineError> {
        self.release_query("status", self.engine.status, release)
    }

    /// `helm history`: every stored revision as Release JSON.
    pub fn history(&self, release: &str) -> Result<Value, EngineError> {
        self.release_query("history", self.engine.history, release)
    }

    fn release_query(
        &self,
        action: &'static str,
        function: ReleaseQueryFn,
        release: &str,
    ) -> Result<Value, EngineError> {
        let release = cstring("the release name", release)?;
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: `release` is a live NUL-terminated string; `out` receives the result,
        // which `finish` frees.
        let rc = unsafe { function(self.handle, release.as_ptr(), &mut out) };
        self.finish(action, rc, out)
    }

    /// `helm get values [--all]`.
    pub fn get_values(&self, release: &str, all: bool) -> Result<Value, EngineError> {
        self.release_int(
            "get values",
            self.engine.get_values,
            release,
            c_int::from(all),
        )
    }

    fn release_int(
        &self,
        action: &'static str,
        function: ReleaseIntFn,
        release: &str,
        arg: c_int,
    ) -> Result<Value, EngineError> {
        let release = cstring("the release name", release)?;
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: `release` is a live NUL-terminated string; `out` receives the result,
        // which `finish` frees.
        let rc = unsafe { function(self.handle, release.as_ptr(), arg, &mut out) };
        self.finish(action, rc, out)
    }

    fn finish(
        &self,
        action: &'static str,
        rc: c_int,
        out: *mut c_char,
    ) -> Result<Value, EngineError> {
        // Read the error before anything else can touch the thread's error slot.
        let checked = self.engine.check(rc);
        if let Err(error) = checked {
            // The engine sets no result on failure, but free one if it ever does.
            if !out.is_null() {
                drop(EngineString {
                    engine: self.engine,
                    ptr: out,
                });
            }
            return Err(error);
        }
        let text = self.engine.take_result(action, out)?;
        serde_json::from_str(&text).map_err(|source| EngineError::BadJson { action, source })
    }
}

fn cstring(what: &'static str, text: &str) -> Result<CString, EngineError> {
    CString::new(text).map_err(|source| EngineError::Nul { what, source })
}
