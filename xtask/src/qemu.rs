//! A small typed QEMU driver: the machine (q35, firmware, accelerator,
//! isa-debug-exit), run either on the terminal or captured with a timeout.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::build::target_dir;
use crate::{Failure, Result};

pub use tests::{Accel, Firmware};

const OVMF_CODE: &[&str] = &[
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE.fd",
];
const MEMORY: &str = "512M";

/// Whether this CPU has hardware virtualization. /dev/kvm alone is not
/// enough: on some hosts it is a software hypervisor (kvm_pvm) under which
/// ordinary guests run about a hundred times slower than under TCG.
pub fn hardware_virtualization() -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_flag = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    has_flag && Path::new("/dev/kvm").exists()
}

pub fn default_accel() -> Accel {
    if hardware_virtualization() {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

pub struct Machine {
    iso: PathBuf,
    firmware: Firmware,
    accel: Accel,
    extra: Vec<String>,
}

/// What a captured run produced.
pub struct Outcome {
    pub console: String,
    /// QEMU's exit status, or `None` when it was killed at the timeout.
    pub status: Option<i32>,
    pub elapsed: Duration,
}

impl Machine {
    pub fn new(iso: &Path, firmware: Firmware, accel: Accel) -> Self {
        Self {
            iso: iso.to_path_buf(),
            firmware,
            accel,
            extra: Vec::new(),
        }
    }

    pub fn extra_args(mut self, args: &[String]) -> Self {
        self.extra.extend_from_slice(args);
        self
    }

    fn command(&self) -> Result<Command> {
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-machine", "q35", "-m", MEMORY, "-smp", "1"]);
        match self.accel {
            Accel::Tcg => qemu.args(["-accel", "tcg", "-cpu", "max"]),
            Accel::Kvm => qemu.args(["-accel", "kvm", "-cpu", "host"]),
        };
        qemu.args(["-display", "none", "-monitor", "none", "-serial", "stdio"]);
        qemu.args([
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]);
        qemu.arg("-cdrom").arg(&self.iso);
        if self.firmware == Firmware::Uefi {
            let code = OVMF_CODE
                .iter()
                .find(|p| Path::new(p).exists())
                .ok_or_else(|| Failure("OVMF not found (package ovmf)".into()))?;
            let vars_template = code.replace("CODE", "VARS");
            let vars = target_dir().join(format!("ovmf-vars-{}.fd", std::process::id()));
            std::fs::copy(&vars_template, &vars)
                .map_err(|e| Failure(format!("cannot copy {vars_template}: {e}")))?;
            qemu.arg("-drive").arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={code}"
            ));
            qemu.arg("-drive").arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ));
        }
        qemu.args(&self.extra);
        Ok(qemu)
    }

    fn cleanup(&self) {
        let vars = target_dir().join(format!("ovmf-vars-{}.fd", std::process::id()));
        let _ = std::fs::remove_file(vars);
    }

    /// Runs with the serial console on this terminal; returns QEMU's status.
    pub fn run_interactive(&self) -> Result<i32> {
        let mut command = self.command()?;
        eprintln!(
            "xtask: booting {} ({:?}, {:?}); the serial console follows",
            self.iso.display(),
            self.firmware,
            self.accel
        );
        let status = command
            .status()
            .map_err(|e| Failure(format!("cannot start qemu-system-x86_64: {e}")))?;
        self.cleanup();
        Ok(status.code().unwrap_or(-1))
    }

    /// Runs with the console captured, killing QEMU after `timeout`.
    pub fn run_captured(&self, timeout: Duration) -> Result<Outcome> {
        let mut command = self.command()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| Failure(format!("cannot start qemu-system-x86_64: {e}")))?;
        let (tx, rx) = mpsc::channel();
        // The serial console (stdout) first, then anything QEMU itself said.
        let pipes = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for (index, pipe) in pipes.into_iter().enumerate() {
            let Some(mut pipe) = pipe else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send((index, buf));
            });
        }
        drop(tx);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status.code().unwrap_or(-1));
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let elapsed = start.elapsed();
        let mut chunks: Vec<(usize, Vec<u8>)> = rx.into_iter().collect();
        chunks.sort_by_key(|(index, _)| *index);
        let console: Vec<u8> = chunks.into_iter().flat_map(|(_, buf)| buf).collect();
        self.cleanup();
        Ok(Outcome {
            console: String::from_utf8_lossy(&console).replace('\r', ""),
            status,
            elapsed,
        })
    }
}
