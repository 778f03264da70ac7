//! A small typed QEMU driver: the machine (q35, firmware, accelerator,
//! isa-debug-exit), run either on the terminal or captured with a timeout,
//! optionally stopping at a terminal console line (Xen halts instead of
//! ending QEMU).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::build::target_dir;
use crate::{Failure, Result};

pub use tests::{Accel, Firmware, RunEnd};

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
    /// Lines to type on the serial console, each once `prompt` has
    /// appeared one more time (see [`Machine::typing`]).
    typed: Vec<String>,
    prompt: String,
    cpus: u8,
}

/// What a captured run produced.
pub struct Outcome {
    /// The serial console, then anything QEMU itself printed.
    pub console: String,
    pub end: RunEnd,
    pub elapsed: Duration,
    /// When each serial console line began to arrive, by line number in
    /// `console`, from the start of the run (host-side timing).
    pub line_started: Vec<Duration>,
    /// When each scripted line was typed, in order, from the start.
    pub typed_at: Vec<Duration>,
}

impl Machine {
    pub fn new(iso: &Path, firmware: Firmware, accel: Accel) -> Self {
        Self {
            iso: iso.to_path_buf(),
            firmware,
            accel,
            extra: Vec::new(),
            typed: Vec::new(),
            prompt: String::new(),
            cpus: 1,
        }
    }

    /// The machine's CPUs (1 unless set; `extra_args` may still say
    /// otherwise, as `cargo xtask run -- -smp 2` does).
    pub fn cpus(mut self, cpus: u8) -> Self {
        self.cpus = cpus.max(1);
        self
    }

    pub fn extra_args(mut self, args: &[String]) -> Self {
        self.extra.extend_from_slice(args);
        self
    }

    /// Types `lines` on the serial console, one after each appearance of
    /// `prompt`, what a person at the shell would do; a `wait:<pattern>`
    /// line waits for a console line instead (see [`tests::Typist`]).
    pub fn typing(mut self, lines: &[String], prompt: &str) -> Self {
        self.typed = lines.to_vec();
        self.prompt = prompt.to_string();
        self
    }

    fn command(&self) -> Result<Command> {
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-machine", "q35", "-m", MEMORY, "-smp"]);
        qemu.arg(self.cpus.to_string());
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
        if let Ok(more) = std::env::var("XTASK_QEMU_DEBUG") {
            qemu.args(more.split_whitespace());
        }
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

    /// Runs with the console captured (see [`Machine::run_watched`]).
    pub fn run_captured(&self, timeout: Duration, stop_on: &[&str]) -> Result<Outcome> {
        self.run_watched(Some(timeout), stop_on, false)
    }

    /// Runs with the console captured, stopping QEMU shortly after a line
    /// that matches one of `stop_on` (a `tests::line_matches` pattern),
    /// or killing it at `timeout`. With `echo`, the console is also copied
    /// to this terminal as it arrives and this terminal's input goes to the
    /// serial line, as in [`Machine::run_interactive`].
    pub fn run_watched(
        &self,
        timeout: Option<Duration>,
        stop_on: &[&str],
        echo: bool,
    ) -> Result<Outcome> {
        let mut command = self.command()?;
        let typing = !self.typed.is_empty();
        command
            .stdin(if typing {
                Stdio::piped()
            } else if echo {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| Failure(format!("cannot start qemu-system-x86_64: {e}")))?;
        let (tx, rx) = mpsc::channel();
        // The serial console is stdout; QEMU's own messages go to stderr.
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
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    if tx.send((index, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut keyboard = child.stdin.take();
        let mut typist = tests::Typist::new(&self.typed, &self.prompt);
        let mut line_started = Vec::new();
        let mut typed_at = Vec::new();

        let mut console = Vec::new();
        let mut messages = Vec::new();
        let mut scanned = 0;
        let mut stop: Option<(Instant, String)> = None;
        let mut status = None;
        let mut exited_at = start;
        let mut timed_out = false;
        let mut pipes_open = true;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok((index, chunk)) => {
                    if echo {
                        let _ = if index == 0 {
                            std::io::stdout().write_all(&chunk)
                        } else {
                            std::io::stderr().write_all(&chunk)
                        };
                        let _ = std::io::stdout().flush();
                    }
                    if index == 0 {
                        let now = start.elapsed();
                        let mut line_start = console.last().is_none_or(|&b| b == b'\n');
                        for &byte in &chunk {
                            if line_start {
                                line_started.push(now);
                            }
                            line_start = byte == b'\n';
                        }
                        console.extend(chunk);
                    } else {
                        messages.extend(chunk);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    pipes_open = false;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if let Some(input) = keyboard.as_mut()
                && let Some(line) = typist.poll(&console)
            {
                let _ = input.write_all(format!("{line}\n").as_bytes());
                let _ = input.flush();
                typed_at.push(start.elapsed());
            }
            // Only whole lines are matched, so a line is judged once.
            while stop.is_none()
                && let Some(end) = console[scanned..].iter().position(|&b| b == b'\n')
            {
                let line =
                    String::from_utf8_lossy(&console[scanned..scanned + end]).replace('\r', "");
                scanned += end + 1;
                if stop_on.iter().any(|p| tests::line_matches(&line, p)) {
                    stop = Some((Instant::now() + LINGER, line));
                }
            }
            if status.is_none()
                && let Some(exit) = child.try_wait()?
            {
                status = Some(exit.code().unwrap_or(-1));
                exited_at = Instant::now();
            }
            if status.is_some() {
                // The rest of the output, unless something else holds the
                // pipes open.
                if !pipes_open || exited_at.elapsed() > Duration::from_secs(2) {
                    break;
                }
                continue;
            }
            if stop.as_ref().is_some_and(|(at, _)| Instant::now() >= *at) {
                status = Some(terminate(&mut child));
                exited_at = Instant::now();
            } else if timeout.is_some_and(|t| start.elapsed() > t) {
                status = Some(terminate(&mut child));
                exited_at = Instant::now();
                timed_out = true;
            }
        }
        let elapsed = start.elapsed();
        self.cleanup();
        console.extend(messages);
        let end = match (stop, timed_out) {
            (Some((_, line)), _) => RunEnd::Stopped(line),
            (None, true) => RunEnd::TimedOut,
            (None, false) => RunEnd::Exited(status.unwrap_or(-1)),
        };
        Ok(Outcome {
            console: String::from_utf8_lossy(&console).replace('\r', ""),
            end,
            elapsed,
            line_started,
            typed_at,
        })
    }
}

/// How long to keep reading after a terminal line: what the hypervisor
/// prints after it belongs in the report.
const LINGER: Duration = Duration::from_millis(200);

/// Ends QEMU: SIGTERM first (by its process id), so it restores the
/// terminal it may have put in raw mode, then SIGKILL if it lingers.
fn terminate(child: &mut Child) -> i32 {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child
        .wait()
        .map_or(-1, |status| status.code().unwrap_or(-1))
}
