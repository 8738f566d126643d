//! What each task needs from the system, and installing what is missing.
//!
//! The only thing ever downloaded is a package from the system's own package manager:
//! `apt-get`, when running as root on a Debian-like system. Anywhere else the task prints one
//! line naming the packages and the command, and stops.

use std::path::Path;
use std::process::Command;

use crate::probe::{self, System};
use crate::Result;

/// A task the README names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// Building and running the `reconf` CLI (RocksDB journal).
    Simulate,
    /// Building and running every test.
    Test,
}

impl Task {
    /// The `cargo xtask` subcommand.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Task::Simulate => "simulate",
            Task::Test => "test",
        }
    }
}

/// One thing a task needs from the system.
#[derive(Debug)]
pub(crate) struct Requirement {
    /// What is missing, as a person would name it.
    pub(crate) what: &'static str,
    /// Who needs it.
    pub(crate) needed_by: &'static str,
    /// The Debian/Ubuntu packages that provide it.
    pub(crate) packages: &'static [&'static str],
    present: fn(&System) -> bool,
    /// Whether `task` on the workspace at the given root needs it.
    wanted: fn(Task, &Path) -> bool,
}

impl Requirement {
    pub(crate) fn is_present(&self, system: &System) -> bool {
        (self.present)(system)
    }
}

/// Whether the workspace has the etcd backend, whose build needs protoc (the CLI links it
/// for `--etcd`, so `simulate` builds it too) and whose tests need an etcd server. The
/// requirement follows the crate, so the set-up never installs a package for a backend
/// that is not there.
fn has_etcd_backend(root: &Path) -> bool {
    root.join("crates/reconf-store-etcd/Cargo.toml").is_file()
}

/// Everything any task may need, in the order it is reported.
pub(crate) const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        what: "libclang",
        needed_by: "RocksDB's bindings",
        packages: &["libclang-dev"],
        present: |s| probe::find_libclang(s).is_some(),
        wanted: |_, _| true,
    },
    Requirement {
        what: "protoc",
        needed_by: "etcd-client's build",
        packages: &["protobuf-compiler"],
        present: |s| probe::find_protoc(s).is_some(),
        wanted: |_, root| has_etcd_backend(root),
    },
    Requirement {
        what: "the protobuf include files",
        needed_by: "etcd-client's build",
        packages: &["libprotobuf-dev"],
        present: |s| probe::find_protobuf_includes(s).is_some(),
        wanted: |_, root| has_etcd_backend(root),
    },
    Requirement {
        what: "etcd",
        needed_by: "the etcd journal's tests",
        packages: &["etcd-server"],
        present: |s| probe::find_etcd(s).is_some(),
        wanted: |task, root| task == Task::Test && has_etcd_backend(root),
    },
];

/// The requirements `task` has and `system` lacks.
pub(crate) fn missing<'r>(
    requirements: &'r [Requirement],
    task: Task,
    root: &Path,
    system: &System,
) -> Vec<&'r Requirement> {
    requirements.iter().filter(|r| (r.wanted)(task, root) && !r.is_present(system)).collect()
}

/// Whether and how this machine can install packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Host {
    pub(crate) is_root: bool,
    pub(crate) has_apt: bool,
}

impl Host {
    pub(crate) fn current(system: &System) -> Self {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0");
        Host { is_root, has_apt: system.find_executable("apt-get").is_some() }
    }
}

/// What to do about the missing requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing is missing.
    Nothing,
    /// Install these packages with apt-get.
    Install(Vec<&'static str>),
    /// Cannot install here: the one line to print before stopping.
    Refuse(String),
}

fn packages_of(missing: &[&Requirement]) -> Vec<&'static str> {
    let mut packages: Vec<&'static str> = Vec::new();
    for package in missing.iter().flat_map(|r| r.packages.iter().copied()) {
        if !packages.contains(&package) {
            packages.push(package);
        }
    }
    packages
}

fn describe(missing: &[&Requirement]) -> String {
    missing.iter().map(|r| format!("{} (for {})", r.what, r.needed_by)).collect::<Vec<_>>().join(", ")
}

pub(crate) fn plan(missing: &[&Requirement], host: Host) -> Plan {
    if missing.is_empty() {
        return Plan::Nothing;
    }
    let packages = packages_of(missing);
    if host.is_root && host.has_apt {
        return Plan::Install(packages);
    }
    let command = format!("apt-get install -y {}", packages.join(" "));
    let how = if host.has_apt {
        format!("run `sudo {command}`")
    } else {
        format!("install them with your package manager (on Debian/Ubuntu: `{command}`)")
    };
    Plan::Refuse(format!("missing {}: {how}, then run this command again", describe(missing)))
}

fn run_apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`apt-get {}` failed ({status})", args.join(" ")).into())
    }
}

/// Makes sure `task`'s requirements are on this machine, installing them when it may.
pub(crate) fn ensure(task: Task, root: &Path) -> Result<()> {
    let system = System::current();
    let lacking = missing(REQUIREMENTS, task, root, &system);
    match plan(&lacking, Host::current(&system)) {
        Plan::Nothing => Ok(()),
        Plan::Refuse(line) => Err(line.into()),
        Plan::Install(packages) => {
            eprintln!("== installing {} for {}", packages.join(" "), describe(&lacking));
            run_apt(&["update", "-qq"])?;
            let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
            args.extend(&packages);
            run_apt(&args)?;
            let still = missing(REQUIREMENTS, task, root, &System::current());
            if still.is_empty() {
                Ok(())
            } else {
                Err(format!("installed {} but still missing {}", packages.join(" "), describe(&still)).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs;

    fn empty_system(root: &Path) -> System {
        System { vars: HashMap::new(), prefixes: vec![root.join("usr")], ask_llvm_config: false }
    }

    fn names(missing: &[&Requirement]) -> Vec<&'static str> {
        missing.iter().map(|r| r.what).collect()
    }

    #[test]
    fn simulate_needs_libclang_and_protoc_but_no_etcd_server() {
        let machine = tempfile::tempdir().expect("tempdir");
        let workspace = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(workspace.path().join("crates/reconf-store-etcd")).expect("dir");
        fs::write(workspace.path().join("crates/reconf-store-etcd/Cargo.toml"), "").expect("file");
        let lacking = missing(REQUIREMENTS, Task::Simulate, workspace.path(), &empty_system(machine.path()));
        assert_eq!(names(&lacking), ["libclang", "protoc", "the protobuf include files"]);
    }

    #[test]
    fn tests_need_protoc_and_etcd_only_with_the_etcd_backend() {
        let machine = tempfile::tempdir().expect("tempdir");
        let system = empty_system(machine.path());
        let workspace = tempfile::tempdir().expect("tempdir");
        assert_eq!(names(&missing(REQUIREMENTS, Task::Test, workspace.path(), &system)), ["libclang"]);

        fs::create_dir_all(workspace.path().join("crates/reconf-store-etcd")).expect("dir");
        fs::write(workspace.path().join("crates/reconf-store-etcd/Cargo.toml"), "").expect("file");
        assert_eq!(
            names(&missing(REQUIREMENTS, Task::Test, workspace.path(), &system)),
            ["libclang", "protoc", "the protobuf include files", "etcd"]
        );
    }

    #[test]
    fn nothing_missing_once_libclang_is_there() {
        let machine = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(machine.path().join("usr/lib/llvm-14/lib")).expect("dir");
        fs::write(machine.path().join("usr/lib/llvm-14/lib/libclang.so"), "").expect("file");
        let workspace = tempfile::tempdir().expect("tempdir");
        let lacking = missing(REQUIREMENTS, Task::Simulate, workspace.path(), &empty_system(machine.path()));
        assert!(lacking.is_empty());
        assert_eq!(plan(&lacking, Host { is_root: false, has_apt: false }), Plan::Nothing);
    }

    #[test]
    fn root_with_apt_installs_each_package_once() {
        let all: Vec<&Requirement> = REQUIREMENTS.iter().collect();
        let host = Host { is_root: true, has_apt: true };
        assert_eq!(
            plan(&all, host),
            Plan::Install(vec!["libclang-dev", "protobuf-compiler", "libprotobuf-dev", "etcd-server"])
        );
        let doubled = [&REQUIREMENTS[0], &REQUIREMENTS[0]];
        assert_eq!(plan(&doubled, host), Plan::Install(vec!["libclang-dev"]));
    }

    #[test]
    fn without_root_or_apt_one_line_names_packages_and_command() {
        let lacking = [&REQUIREMENTS[0]];
        let Plan::Refuse(line) = plan(&lacking, Host { is_root: false, has_apt: true }) else {
            panic!("a user without root must not install");
        };
        assert!(!line.contains('\n'));
        assert!(line.contains("libclang (for RocksDB's bindings)"), "{line}");
        assert!(line.contains("`sudo apt-get install -y libclang-dev`"), "{line}");

        let Plan::Refuse(line) = plan(&lacking, Host { is_root: true, has_apt: false }) else {
            panic!("no apt-get: nothing to install with");
        };
        assert!(line.contains("your package manager"), "{line}");
        assert!(line.contains("`apt-get install -y libclang-dev`"), "{line}");
    }
}
