//! Finding what the build and the tests need on this machine, without changing anything.
//!
//! Every probe reads a [`System`]: the environment variables, `PATH` and the file-system roots
//! it searches. The real one is [`System::current`]; tests build one over a temporary
//! directory, so "libclang absent" or "protoc present" is checked without uninstalling or
//! installing anything.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the probes look at.
#[derive(Debug, Clone)]
pub(crate) struct System {
    /// Environment variables the probes honour (`LIBCLANG_PATH`, `PROTOC`, `PROTOC_INCLUDE`,
    /// `LD_LIBRARY_PATH`, `PATH`).
    pub(crate) vars: HashMap<String, OsString>,
    /// Prefixes searched the way clang-sys searches `/usr` and `/usr/local`.
    pub(crate) prefixes: Vec<PathBuf>,
    /// Whether `llvm-config` may be run to ask for its library directory. Off in tests, whose
    /// answers must not depend on what this machine has installed.
    pub(crate) ask_llvm_config: bool,
}

impl System {
    /// This machine.
    pub(crate) fn current() -> Self {
        let vars = ["LIBCLANG_PATH", "LD_LIBRARY_PATH", "PATH", "PROTOC", "PROTOC_INCLUDE"]
            .into_iter()
            .filter_map(|name| std::env::var_os(name).map(|value| (name.to_owned(), value)))
            .collect();
        System {
            vars,
            prefixes: vec![PathBuf::from("/usr/local"), PathBuf::from("/usr")],
            ask_llvm_config: true,
        }
    }

    fn var(&self, name: &str) -> Option<&OsString> {
        self.vars.get(name).filter(|value| !value.is_empty())
    }

    /// The directories of a `PATH`-like variable.
    fn dirs_of(&self, name: &str) -> Vec<PathBuf> {
        self.var(name).map(|value| std::env::split_paths(value).collect()).unwrap_or_default()
    }

    /// The first executable file called `name` on `PATH`.
    pub(crate) fn find_executable(&self, name: &str) -> Option<PathBuf> {
        self.dirs_of("PATH").into_iter().map(|dir| dir.join(name)).find(|path| is_executable(path))
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Whether `name` is a shared library bindgen can load as libclang: `libclang.so`,
/// `libclang-14.so`, `libclang.so.1`, `libclang-14.so.1`. `libclang-cpp.so.*` (the C++ API
/// library, which many machines have because other LLVM tools need it) is not: it does not
/// export the C API bindgen calls.
pub(crate) fn is_libclang_name(name: &str) -> bool {
    if name == "libclang.so" || name.starts_with("libclang.so.") {
        return true;
    }
    let Some(rest) = name.strip_prefix("libclang-") else {
        return false;
    };
    // What stands between `libclang-` and `.so` must be a version: digits and dots.
    let version = rest.split(".so").next().unwrap_or_default();
    let after = &rest[version.len()..];
    !version.is_empty()
        && version.chars().all(|c| c.is_ascii_digit() || c == '.')
        && (after == ".so" || after.starts_with(".so."))
}

/// The directories clang-sys searches under one prefix (`lib*`, `lib*/*`, `lib*/*/*`, and
/// `llvm*/lib*` for `/usr/local`-style prefixes), existing ones only.
fn library_dirs_under(prefix: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for top in subdirs(prefix) {
        let name = top.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.starts_with("lib") {
            dirs.push(top.clone());
            for second in subdirs(&top) {
                dirs.extend(subdirs(&second));
                dirs.push(second);
            }
        } else if name.starts_with("llvm") {
            dirs.extend(
                subdirs(&top)
                    .into_iter()
                    .filter(|d| d.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("lib"))),
            );
        }
    }
    dirs
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

fn libclang_in(dir: &Path) -> Option<PathBuf> {
    let entries = fs::read_dir(dir).ok()?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(is_libclang_name))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The libclang shared library bindgen would load, searched in the order clang-sys uses:
/// `LIBCLANG_PATH`, `llvm-config --libdir`, `LD_LIBRARY_PATH`, then the system prefixes.
pub(crate) fn find_libclang(system: &System) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = system.var("LIBCLANG_PATH").map(PathBuf::from).into_iter().collect();
    if system.ask_llvm_config {
        if let Some(llvm_config) = system.find_executable("llvm-config") {
            if let Ok(out) = Command::new(llvm_config).arg("--libdir").output() {
                let libdir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if out.status.success() && !libdir.is_empty() {
                    dirs.push(PathBuf::from(libdir));
                }
            }
        }
    }
    dirs.extend(system.dirs_of("LD_LIBRARY_PATH"));
    for prefix in &system.prefixes {
        dirs.extend(library_dirs_under(prefix));
    }
    dirs.iter().find_map(|dir| libclang_in(dir))
}

/// The `protoc` prost-build would run: `PROTOC` when set, otherwise the one on `PATH`.
pub(crate) fn find_protoc(system: &System) -> Option<PathBuf> {
    match system.var("PROTOC") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| is_executable(p)),
        None => system.find_executable("protoc"),
    }
}

/// Where protoc finds the well-known types (`google/protobuf/*.proto`) that etcd's protos
/// import: `PROTOC_INCLUDE` when set, otherwise `include/` next to protoc's `bin/` or under
/// a system prefix.
pub(crate) fn find_protobuf_includes(system: &System) -> Option<PathBuf> {
    const PROBE_FILE: &str = "google/protobuf/descriptor.proto";
    if let Some(dir) = system.var("PROTOC_INCLUDE") {
        return Some(PathBuf::from(dir)).filter(|d| d.join(PROBE_FILE).is_file());
    }
    let beside_protoc =
        find_protoc(system).and_then(|protoc| protoc.parent()?.parent().map(|prefix| prefix.join("include")));
    beside_protoc
        .into_iter()
        .chain(system.prefixes.iter().map(|prefix| prefix.join("include")))
        .find(|dir| dir.join(PROBE_FILE).is_file())
}

/// The `etcd` server the etcd tests start, looked up on `PATH` as the tests look it up.
pub(crate) fn find_etcd(system: &System) -> Option<PathBuf> {
    system.find_executable("etcd")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine made of a temporary directory: `usr/` and `usr/local/` as prefixes,
    /// `bin/` as the whole `PATH`.
    struct FakeMachine {
        root: tempfile::TempDir,
    }

    impl FakeMachine {
        fn new() -> Self {
            let root = tempfile::tempdir().expect("temporary directory");
            fs::create_dir_all(root.path().join("bin")).expect("bin");
            FakeMachine { root }
        }

        fn file(&self, relative: &str) -> PathBuf {
            let path = self.root.path().join(relative);
            fs::create_dir_all(path.parent().expect("parent")).expect("directories");
            fs::write(&path, b"\x7fELF").expect("file");
            path
        }

        #[cfg(unix)]
        fn executable(&self, relative: &str) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let path = self.file(relative);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
            path
        }

        fn system(&self) -> System {
            let mut vars = HashMap::new();
            vars.insert("PATH".to_owned(), self.root.path().join("bin").into_os_string());
            System {
                vars,
                prefixes: vec![self.root.path().join("usr/local"), self.root.path().join("usr")],
                ask_llvm_config: false,
            }
        }
    }

    #[test]
    fn libclang_names() {
        for yes in
            ["libclang.so", "libclang.so.1", "libclang-14.so", "libclang-14.0.6.so.1", "libclang.so.14.0"]
        {
            assert!(is_libclang_name(yes), "{yes}");
        }
        for no in [
            "libclang-cpp.so.14",
            "libclang-cpp.so",
            "libclang.a",
            "libclangBasic.a",
            "libclang-.so",
            "clang",
        ] {
            assert!(!is_libclang_name(no), "{no}");
        }
    }

    #[test]
    fn libclang_absent_when_only_libclang_cpp_is_installed() {
        let machine = FakeMachine::new();
        machine.file("usr/lib/x86_64-linux-gnu/libclang-cpp.so.14");
        machine.file("usr/lib/llvm-14/lib/libclang-cpp.so.14");
        assert_eq!(find_libclang(&machine.system()), None);
    }

    #[test]
    fn libclang_found_where_debian_puts_it() {
        let machine = FakeMachine::new();
        machine.file("usr/lib/x86_64-linux-gnu/libclang-cpp.so.14");
        let lib = machine.file("usr/lib/llvm-14/lib/libclang-14.so.1");
        assert_eq!(find_libclang(&machine.system()), Some(lib));
    }

    #[test]
    fn libclang_found_in_multiarch_and_local_llvm_dirs() {
        let machine = FakeMachine::new();
        let lib = machine.file("usr/lib/x86_64-linux-gnu/libclang.so.1");
        assert_eq!(find_libclang(&machine.system()), Some(lib));

        let machine = FakeMachine::new();
        let lib = machine.file("usr/local/llvm17/lib64/libclang.so");
        assert_eq!(find_libclang(&machine.system()), Some(lib));
    }

    #[test]
    fn libclang_path_is_searched_first() {
        let machine = FakeMachine::new();
        machine.file("usr/lib/libclang.so");
        let chosen = machine.file("opt/clang/libclang.so");
        let mut system = machine.system();
        system.vars.insert("LIBCLANG_PATH".into(), machine.root.path().join("opt/clang").into());
        assert_eq!(find_libclang(&system), Some(chosen));
    }

    #[cfg(unix)]
    #[test]
    fn protoc_absent_then_present() {
        let machine = FakeMachine::new();
        assert_eq!(find_protoc(&machine.system()), None);
        // A protoc that is not executable is not a protoc.
        machine.file("bin/protoc");
        assert_eq!(find_protoc(&machine.system()), None);
        let protoc = machine.executable("bin/protoc");
        assert_eq!(find_protoc(&machine.system()), Some(protoc));
    }

    #[cfg(unix)]
    #[test]
    fn protoc_env_var_overrides_path() {
        let machine = FakeMachine::new();
        machine.executable("bin/protoc");
        let chosen = machine.executable("opt/protoc/bin/protoc");
        let mut system = machine.system();
        system.vars.insert("PROTOC".into(), chosen.clone().into());
        assert_eq!(find_protoc(&system), Some(chosen));
        system.vars.insert("PROTOC".into(), machine.root.path().join("nowhere/protoc").into());
        assert_eq!(find_protoc(&system), None, "a PROTOC naming nothing is not replaced by PATH");
    }

    #[cfg(unix)]
    #[test]
    fn protobuf_includes_beside_protoc_or_under_a_prefix() {
        let machine = FakeMachine::new();
        machine.executable("bin/protoc");
        assert_eq!(find_protobuf_includes(&machine.system()), None, "protoc without its include files");
        machine.file("usr/include/google/protobuf/descriptor.proto");
        assert_eq!(find_protobuf_includes(&machine.system()), Some(machine.root.path().join("usr/include")));
        machine.file("include/google/protobuf/descriptor.proto");
        assert_eq!(find_protobuf_includes(&machine.system()), Some(machine.root.path().join("include")));
    }

    #[cfg(unix)]
    #[test]
    fn etcd_absent_then_present() {
        let machine = FakeMachine::new();
        assert_eq!(find_etcd(&machine.system()), None);
        let etcd = machine.executable("bin/etcd");
        assert_eq!(find_etcd(&machine.system()), Some(etcd));
    }
}
