//! The many-domains scenarios: dom0 boots as the toolstack, an operator
//! script at its shell creates, watches and destroys domUs, and the judge
//! reads what dom0 and the guests printed.
//!
//! The guests come from the image bundle dom0 receives at boot: the
//! example guests (`guests/`: `hello`, `pingpong`, `spin`) and the domU
//! test guests (`tests/guests`, bins `domu-*`). Domain ids start at 1 on a
//! fresh boot and are not reused within one, so a scenario may name them.
//!
//! Besides console lines, these scenarios judge what only a whole session
//! shows: the `list` table (who is still there, CPU seconds), the free
//! memory `info` reports before and after, and a domU's own result line.
//! The parsers for those are here and unit-tested.

use std::time::Duration;

use crate::{
    Ending, Firmware, Hypervisor, InitialDomain, Judge, Kernel, Scenario, Step, Verdict, boot,
    guest_text, parse_result_line,
};

use Step::{Repeat, Type, WaitFor};

/// dom0's power-off, the last line of every session.
const POWERED_OFF: &str = "(hv) d0 shut down (poweroff): powering off";

/// A dom0 shell session on hv-core, judged by [`Judge::Shell`].
const fn session(
    name: &'static str,
    input: &'static [Step],
    timeout_secs: u64,
    judge: Judge,
) -> Scenario {
    Scenario {
        cmdline: "debug-exit=fatal",
        initial_domain: Some(InitialDomain {
            kernel: Kernel::Dom0,
            cmdline: "",
        }),
        input,
        timeout: Duration::from_secs(timeout_secs),
        judge,
        ..boot(name, Firmware::Bios, crate::Accel::Tcg)
    }
}

/// `scenario` on Xen 4.17 instead, under `name`: the same dom0, guests
/// and judgement (the ending is Xen's halt line).
const fn on_xen(name: &'static str, scenario: Scenario) -> Scenario {
    Scenario {
        name,
        hypervisor: Hypervisor::Xen,
        cmdline: "",
        ..scenario
    }
}

/// Rounds each pingpong guest plays (the example's default).
pub const PINGPONG_ROUNDS: u32 = 100_000;
/// Create/destroy cycles in `create-destroy-500`.
pub const CYCLES: u32 = 500;
/// Cycles in `smp-destroy-running`, each destroying a guest running on
/// two CPUs.
pub const RUNNING_CYCLES: u32 = 100;
/// How far apart two spin guests' CPU times may be, as a fraction of the
/// larger.
pub const FAIRNESS: f64 = 0.10;
/// The CPU seconds each spin guest must have had for [`FAIRNESS`] to mean
/// something (`list` shows tenths of seconds).
pub const FAIRNESS_MIN_SECS: f64 = 3.0;

/// Grant map (read-only and writable) and grant copy (both ways)
/// between two domUs move the right bytes; a mapped grant cannot be
/// revoked, an unmapped one can, and a revoked one no longer maps.
const GRANT_MAP_COPY: Scenario = session(
    "grant-map-copy",
    &[
        Type("create domu-grant name=granter cmdline=\"granter peer=2\""),
        Type("create domu-grant name=mapper cmdline=\"mapper peer=1\""),
        WaitFor("domain # (granter) #"),
        WaitFor("domain # (mapper) #"),
        Type("list"),
        Type("poweroff"),
    ],
    180,
    Judge::Shell {
        expect: &[
            "created domain 1 (granter)",
            "created domain 2 (mapper)",
            "Domain-0 ",
        ],
        anywhere: &[
            "[mapper] domu-grant: read-only mapping of ref 8: right bytes",
            "[mapper] domu-grant: writable mapping of ref 9: right bytes",
            "[mapper] domu-grant: grant copy of ref 10 into our page: right bytes",
            "[granter] domu-grant: page 9 written through the peer's mapping: right bytes",
            "[granter] domu-grant: page 10 after the peer's grant copy into it: right bytes",
            "[granter] domu-grant: revoking ref 9 while mapped: refused",
            "[granter] domu-grant: revoking refs 8, 9, 10 after the unmap: done",
            "domain 1 (granter) exited",
            "domain 2 (mapper) exited",
        ],
        check: grant_pair_passed,
        ending: Ending::PowerOff,
    },
);

/// hello runs, prints, exits, and is gone; `expect` is what the console
/// shows, in order.
const fn create_hello(expect: &'static [&'static str]) -> Scenario {
    session(
        "create-hello",
        &[
            Type("create hello"),
            WaitFor("domain # (hello) #"),
            Type("list"),
            Type("poweroff"),
        ],
        120,
        Judge::Shell {
            expect,
            anywhere: &[],
            check: hello_is_gone,
            ending: Ending::PowerOff,
        },
    )
}

/// One's own kernel, as a user makes it: the crate `cargo xtask
/// new-guest` writes, built with a plain `cargo build --release` outside
/// the workspace, booted as the initial domain (`cargo xtask run --kernel
/// PATH`, what `cargo run --release` in the crate does).
const NEW_GUEST_INITIAL: Scenario = Scenario {
    cmdline: "debug-exit=fatal",
    initial_domain: Some(InitialDomain {
        kernel: Kernel::NewGuest,
        cmdline: "",
    }),
    timeout: Duration::from_secs(60),
    judge: Judge::Console {
        expect: &[
            "mykernel: hello from my own kernel (# pages, command line \"\")",
            "mykernel: slept # ms",
            "mykernel: goodbye",
        ],
        ending: Ending::PowerOff,
    },
    ..boot("new-guest@hv-core", Firmware::Bios, crate::Accel::Tcg)
};

/// The same kernel in dom0's bundle (`cargo xtask run --image
/// mykernel=PATH`), created as a domU.
const NEW_GUEST_DOMU: Scenario = Scenario {
    bundle_extra: &[(crate::NEW_GUEST, Kernel::NewGuest)],
    ..session(
        "new-guest-domu@hv-core",
        &[
            Type("create mykernel"),
            WaitFor("domain # (mykernel) #"),
            Type("list"),
            Type("poweroff"),
        ],
        120,
        Judge::Shell {
            expect: &[
                "created domain 1 (mykernel)",
                "[mykernel] mykernel: hello from my own kernel (# pages, command line \"\")",
                "[mykernel] mykernel: slept # ms",
                "[mykernel] mykernel: goodbye",
                "domain 1 (mykernel) exited",
                "Domain-0 ",
            ],
            anywhere: &[],
            check: new_guest_is_gone,
            ending: Ending::PowerOff,
        },
    )
};

fn new_guest_is_gone(console: &str) -> Result<(), String> {
    gone_from_list(console, crate::NEW_GUEST, "mykernel exited")
}

/// The SDK's clock in a domU: it advances between two reads 1 ms apart,
/// and a 100 ms sleep lasts 100-150 ms, by the TSC (on Xen 4.17 it once
/// stood still between Xen's updates, and such a sleep took a second).
const CLOCK_IN_A_DOMU: Scenario = session(
    "domu-clock@hv-core",
    &[
        Type("create domu-clock name=clock"),
        WaitFor("domain # (clock) #"),
        Type("poweroff"),
    ],
    120,
    Judge::Shell {
        expect: &["created domain 1 (clock)", "domain 1 (clock) exited"],
        anywhere: &[],
        check: clock_passed,
        ending: Ending::PowerOff,
    },
);

fn clock_passed(console: &str) -> Result<(), String> {
    match domu_verdict(console, "clock", "domu-clock")? {
        Verdict::Pass => Ok(()),
        Verdict::Fail(why) => Err(why),
        Verdict::Skip(why) => Err(format!("skipped: {why}")),
    }
}

/// The pingpong pair (see its entry in [`SCENARIOS`]); `expect` as for
/// [`create_hello`].
const fn pingpong(expect: &'static [&'static str]) -> Scenario {
    session(
        "pingpong",
        &[
            Type("create pingpong name=pong cmdline=\"peer=2\""),
            Type("create pingpong name=ping cmdline=\"peer=1\""),
            WaitFor("domain # (ping) #"),
            WaitFor("domain # (pong) #"),
            Type("list"),
            Type("poweroff"),
        ],
        300,
        Judge::Shell {
            expect,
            anywhere: &[
                "[ping] pingpong: 100000 round trips, all payloads checked",
                "[pong] pingpong: 100000 round trips, all payloads checked",
                "[pong] pingpong: end_access refused while the peer has the page mapped",
                "[pong] pingpong: end_access succeeded after the peer unmapped",
                "[ping] pingpong: grant copy of the shared page: right bytes",
                "[ping] pingpong: grant copy # MB/s, memcpy # MB/s",
                "domain 1 (pong) exited",
                "domain 2 (ping) exited",
            ],
            check: pingpong_clean,
            ending: Ending::PowerOff,
        },
    )
}

/// `spin` reports twice, is destroyed, and is gone from `list`.
const fn spin_until_destroyed(expect: &'static [&'static str]) -> Scenario {
    session(
        "spin",
        &[
            Type("create spin"),
            WaitFor("[spin] spin: # iterations"),
            WaitFor("[spin] spin: # iterations"),
            Type("destroy spin"),
            Type("list"),
            Type("poweroff"),
        ],
        120,
        Judge::Shell {
            expect,
            anywhere: &[],
            check: spin_is_gone,
            ending: Ending::PowerOff,
        },
    )
}

fn spin_is_gone(console: &str) -> Result<(), String> {
    gone_from_list(console, "spin", "`destroy spin`")
}

pub const SCENARIOS: &[Scenario] = &[
    CLOCK_IN_A_DOMU,
    on_xen("domu-clock@xen", CLOCK_IN_A_DOMU),
    NEW_GUEST_INITIAL,
    on_xen("new-guest@xen", NEW_GUEST_INITIAL),
    NEW_GUEST_DOMU,
    on_xen("new-guest-domu@xen", NEW_GUEST_DOMU),
    // The first check.
    create_hello(&[
        "created domain 1 (hello)",
        "[hello] Hello from domain 1!",
        "[hello] hello: goodbye",
        "domain 1 (hello) exited",
        "Domain-0 ",
        POWERED_OFF,
    ]),
    // The first domain after boot on Xen 4.17 gets frames Xen has not
    // cleared (they held the boot modules): its console page must still
    // start with empty rings, or the guest gives up on them and nothing
    // it prints arrives.
    on_xen(
        "create-hello@xen",
        create_hello(&[
            "created domain 1 (hello)",
            "[hello] Hello from domain 1!",
            "[hello] hello: goodbye",
            "domain 1 (hello) exited",
            "Domain-0 ",
        ]),
    ),
    // Each domain keeps its own floating-point registers: two guests
    // with different values in st(0) yield to each other 5000 times.
    session(
        "fpu-isolation",
        &[
            Type("create domu-fpu name=fpa cmdline=\"seed=1111\""),
            Type("create domu-fpu name=fpb cmdline=\"seed=2222\""),
            WaitFor("domain # (fpa) #"),
            WaitFor("domain # (fpb) #"),
            Type("list"),
            Type("poweroff"),
        ],
        120,
        Judge::Shell {
            expect: &["Domain-0 ", POWERED_OFF],
            anywhere: &[
                "[fpa] domu-fpu: x87 state kept across at least 5000 yields",
                "[fpb] domu-fpu: x87 state kept across at least 5000 yields",
                "domain 1 (fpa) exited",
                "domain 2 (fpb) exited",
            ],
            check: both_fpu_guests_gone,
            ending: Ending::PowerOff,
        },
    ),
    // Security finding 9: each domain keeps its own data segment
    // selectors, two guests with different DS and ES yielding to each
    // other.
    session(
        "segment-isolation",
        &[
            Type("create domu-segment-leak name=sega cmdline=\"seed=1\""),
            Type("create domu-segment-leak name=segb cmdline=\"seed=2\""),
            WaitFor("domain # (sega) #"),
            WaitFor("domain # (segb) #"),
            Type("poweroff"),
        ],
        120,
        Judge::Shell {
            expect: &[POWERED_OFF],
            anywhere: &["domain 1 (sega) exited", "domain 2 (segb) exited"],
            check: both_segment_guests_passed,
            ending: Ending::PowerOff,
        },
    ),
    // Two guests exchange 100,000 messages over an interdomain event
    // channel and a granted page, check every payload, and the granting
    // side's revoke is refused while the page is mapped.
    pingpong(&[
        "created domain 1 (pong)",
        "created domain 2 (ping)",
        "Domain-0 ",
        POWERED_OFF,
    ]),
    on_xen(
        "pingpong@xen",
        pingpong(&[
            "created domain 1 (pong)",
            "created domain 2 (ping)",
            "Domain-0 ",
        ]),
    ),
    // spin runs as a domU until destroyed, on both hosts.
    spin_until_destroyed(&["created domain 1 (spin)", "Domain-0 ", POWERED_OFF]),
    on_xen(
        "spin@xen",
        spin_until_destroyed(&["created domain 1 (spin)", "Domain-0 "]),
    ),
    GRANT_MAP_COPY,
    // The same pair on Xen 4.17: the test guests agree with the reference.
    on_xen("grant-map-copy@xen", GRANT_MAP_COPY),
    // The builder refuses an image built for another ABI, naming both
    // versions, before it creates anything; every bad argument gets one
    // line and the shell goes on.
    session(
        "shell-refusals",
        &[
            Type("images"),
            Type("create domu-abi-0.3"),
            Type("create nosuch"),
            Type("destroy 99"),
            Type("pause"),
            Type("create hello memory=abc"),
            Type("unpause nobody"),
            Type("list"),
            Type("info"),
            Type("poweroff"),
        ],
        120,
        Judge::Shell {
            expect: &[
                "(d0) hello ",
                "(d0) pingpong ",
                "(d0) spin ",
                "(d0) domu-hostile ",
                "create: image `domu-abi-0.3` refused: built for ABI 0.3, this hypervisor implements ABI 0.1",
                "(d0) dom0> create nosuch",
                "create: no image `nosuch`",
                "(d0) dom0> destroy 99",
                "destroy: no domain `99`",
                "(d0) dom0> pause",
                "`pause` needs a domain",
                "(d0) dom0> create hello memory=abc",
                "create: memory= takes MiB",
                "(d0) dom0> unpause nobody",
                "unpause: no domain `nobody`",
                "Domain-0 ",
                "free memory: # pages",
                POWERED_OFF,
            ],
            anywhere: &[],
            check: nothing_created,
            ending: Ending::PowerOff,
        },
    ),
    // A CPU-bound guest keeps running while four others crash in four
    // ways; dom0 reports each and the survivor is still listed.
    session(
        "domu-crashes",
        &[
            Type("create spin"),
            WaitFor("[spin] spin: "),
            Type("create domu-crash name=wild cmdline=\"wild\""),
            WaitFor("domain # (wild) #"),
            Type("create domu-crash name=panic cmdline=\"panic\""),
            WaitFor("domain # (panic) #"),
            Type("create domu-crash name=badhc cmdline=\"badhc\""),
            WaitFor("domain # (badhc) #"),
            Type("create domu-crash name=ud2 cmdline=\"ud2\""),
            WaitFor("domain # (ud2) #"),
            // Progress after the last crash: the survivor still runs.
            WaitFor("[spin] spin: "),
            Type("list"),
            Type("poweroff"),
        ],
        240,
        Judge::Shell {
            // dom0's lines in order; the hypervisor's reports come when
            // the guest dies, before dom0 has even printed `created` (its
            // console back-end forwards guest output a little later).
            expect: &[
                "created domain 1 (spin)",
                "[spin] spin: ",
                "created domain 2 (wild)",
                "[wild] domu-crash: wild: writing to",
                "domain 2 (wild) crashed",
                "created domain 3 (panic)",
                "[panic] guest panic: ",
                "domain 3 (panic) crashed",
                "created domain 4 (badhc)",
                "[badhc] domu-crash: badhc: every bad argument refused with -EFAULT",
                "[badhc] unhandled page fault (#PF) (vector 14) in guest kernel mode",
                "domain 4 (badhc) crashed",
                "created domain 5 (ud2)",
                "[ud2] domu-crash: ud2: executing ud2",
                "domain 5 (ud2) crashed",
                "[spin] spin: ",
                "Domain-0 ",
                POWERED_OFF,
            ],
            anywhere: &[
                "(hv) ERROR: d2v0 killed: page fault (#PF) at 0x3baddead0000",
                "(hv) ERROR: d5v0 killed: invalid opcode (#UD)",
                "(hv) d3 shut down (crash, reason 3)",
                "(hv) d4 shut down (crash, reason 3)",
            ],
            check: only_spin_survives,
            ending: Ending::PowerOff,
        },
    ),
    // Every privileged or cross-domain thing an unprivileged guest tries
    // is refused, and dom0 still answers afterwards.
    session(
        "hostile-domu",
        &[
            Type("create domu-hostile"),
            WaitFor("domain # (domu-hostile) #"),
            Type("info"),
            Type("list"),
            Type("poweroff"),
        ],
        180,
        Judge::Shell {
            expect: &[
                "created domain 1 (domu-hostile)",
                "domain 1 (domu-hostile) exited",
                "free memory: # pages",
                "Domain-0 ",
                POWERED_OFF,
            ],
            anywhere: &[],
            check: hostile_passed,
            ending: Ending::PowerOff,
        },
    ),
    // Teardown returns everything: 500 builds and destroys later, the
    // hypervisor's free memory is exactly what it was.
    session(
        "create-destroy-500",
        &[
            Type("info"),
            Repeat(
                CYCLES,
                &[
                    Type("create spin name=cycle memory=4"),
                    Type("destroy cycle"),
                ],
            ),
            Type("info"),
            Type("poweroff"),
        ],
        300,
        Judge::Shell {
            expect: &["free memory: # pages", "free memory: # pages", POWERED_OFF],
            anywhere: &[],
            check: memory_returns,
            ending: Ending::PowerOff,
        },
    ),
    // Destroying a domain whose two vCPUs are running on two CPUs (it
    // has just printed that it spins on both), 100 times: no CPU picks a
    // vCPU up while its domain is taken off the CPUs and torn down, and
    // the memory comes back.
    Scenario {
        cpus: 2,
        ..session(
            "smp-destroy-running",
            &[
                Type("info"),
                Repeat(
                    RUNNING_CYCLES,
                    &[
                        Type("create spin name=cycle memory=4 vcpus=2"),
                        WaitFor("spinning on 2 vCPUs"),
                        Type("destroy cycle"),
                    ],
                ),
                Type("info"),
                Type("poweroff"),
            ],
            300,
            Judge::Shell {
                expect: &["free memory: # pages", "free memory: # pages", POWERED_OFF],
                anywhere: &[],
                check: memory_returns_after_running,
                ending: Ending::PowerOff,
            },
        )
    },
    // Two CPU-bound guests get the same share. Both are paused while the
    // other is built, so neither has a head start.
    session(
        "spin-fairness",
        &[
            Repeat(1, TWO_SPINS),
            Repeat(6, &[WaitFor("[b] spin: ")]),
            Type("list"),
            Type("poweroff"),
        ],
        240,
        Judge::Shell {
            expect: &[
                "created domain 1 (a)",
                "created domain 2 (b)",
                "Domain-0 ",
                POWERED_OFF,
            ],
            anywhere: &[],
            check: spins_are_fair,
            ending: Ending::PowerOff,
        },
    ),
    // Two CPUs run two CPU-bound guests at once (their CPU seconds add up
    // to about twice the time that passed); pinned to one CPU they share
    // it (about once); `vcpu-list` shows where each runs and its affinity.
    Scenario {
        cpus: 2,
        ..session(
            "smp-affinity",
            &[
                Repeat(1, TWO_SPINS),
                Type("info"),
                Repeat(3, &[WaitFor("[b] spin: ")]),
                Type("info"),
                Type("list"),
                Type("vcpu-list"),
                Type("vcpu-pin a 0 1"),
                Type("vcpu-pin b all 1"),
                Type("vcpu-pin a 0 5"),
                Type("info"),
                Type("list"),
                Repeat(3, &[WaitFor("[b] spin: ")]),
                Type("info"),
                Type("list"),
                Type("vcpu-list"),
                Type("poweroff"),
            ],
            240,
            Judge::Shell {
                expect: &[
                    "created domain 1 (a)",
                    "created domain 2 (b)",
                    "vcpu-pin: domain 1 vCPU 0 may run on CPUs 1",
                    "vcpu-pin: domain 2 vCPU 0 may run on CPUs 1",
                    "vcpu-pin: none of CPUs 5 is up (the machine has 0-1)",
                    POWERED_OFF,
                ],
                anywhere: &[],
                check: cpus_run_in_parallel_until_pinned,
                ending: Ending::PowerOff,
            },
        )
    },
    // A domain with three vCPUs whose guest uses one: vCPU 0 starts, the
    // other two stay down; `vcpu-list` shows all three. A count
    // past hv-core's limit is refused before anything is built.
    session(
        "create-vcpus",
        &[
            // A server waiting for its client: alive, on vCPU 0 only.
            Type("create pingpong name=s vcpus=3 cmdline=\"peer=5\""),
            Type("vcpu-list s"),
            Type("create spin vcpus=9"),
            Type("destroy s"),
            Type("poweroff"),
        ],
        120,
        Judge::Shell {
            expect: &[
                "created domain 1 (s)",
                "create: vcpus= takes a count from 1 to 8, not `9`",
                POWERED_OFF,
            ],
            anywhere: &[],
            check: three_vcpus_one_up,
            ending: Ending::PowerOff,
        },
    ),
    // One domain with two vCPUs on two CPUs: `spin` brings up its second
    // vCPU, and the domain's CPU time grows at about twice the time that
    // passes; `vcpu-list` shows both vCPUs up.
    // Four vCPUs of one domain hammer the same page tables at once
    // (updates, pins, unpins) on four CPUs; afterwards every count is
    // balanced: the guest's own check, and the hypervisor's free memory
    // back where it was once the domain is gone.
    Scenario {
        cpus: 4,
        ..session(
            "smp-pt-stress",
            &[
                Type("info"),
                Type("create domu-pt-stress vcpus=4"),
                WaitFor("domain # (domu-pt-stress) #"),
                Type("info"),
                Type("poweroff"),
            ],
            240,
            Judge::Shell {
                expect: &[
                    "created domain 1 (domu-pt-stress)",
                    "free memory: # pages",
                    "free memory: # pages",
                    POWERED_OFF,
                ],
                anywhere: &[],
                check: pt_stress_passed,
                ending: Ending::PowerOff,
            },
        )
    },
    // Four CPU-bound guests on two CPUs: each gets a quarter to a half of
    // a CPU (a half each, less dom0's share), within 10% of the others:
    // two run queues, kept even by pulling.
    Scenario {
        cpus: 2,
        ..session(
            "smp-four-spins",
            &[
                Type("create spin name=a"),
                Type("pause a"),
                Type("create spin name=b"),
                Type("pause b"),
                Type("create spin name=c"),
                Type("pause c"),
                Type("create spin name=d"),
                Type("pause d"),
                Type("unpause a"),
                Type("unpause b"),
                Type("unpause c"),
                Type("unpause d"),
                Repeat(1, &[WaitFor("[d] spin: ")]),
                Type("info"),
                Type("list"),
                Repeat(4, &[WaitFor("[d] spin: ")]),
                Type("info"),
                Type("list"),
                Type("poweroff"),
            ],
            240,
            Judge::Shell {
                expect: &["created domain 4 (d)", POWERED_OFF],
                anywhere: &[],
                check: four_spins_share_two_cpus,
                ending: Ending::PowerOff,
            },
        )
    },
    Scenario {
        cpus: 2,
        ..session(
            "smp-domain-spin",
            &[
                Type("create spin name=s vcpus=2"),
                WaitFor("[s] spin: spinning on 2 vCPUs"),
                Type("info"),
                Repeat(3, &[WaitFor("iterations")]),
                Type("info"),
                Type("list"),
                Type("vcpu-list s"),
                Type("poweroff"),
            ],
            240,
            Judge::Shell {
                expect: &["created domain 1 (s)", POWERED_OFF],
                anywhere: &[],
                check: two_vcpus_run_in_parallel,
                ending: Ending::PowerOff,
            },
        )
    },
];

/// `smp-four-spins`: between the two `info`s each of the four spin guests
/// ran a quarter to a half of the time that passed (10% slack either
/// way), and no two are more than [`FAIRNESS`] apart.
fn four_spins_share_two_cpus(console: &str) -> Result<(), String> {
    let [start, end, ..] = uptimes(console)[..] else {
        return Err("`info` did not print two uptimes".into());
    };
    let tables = list_tables(console);
    let [first, .., last] = &tables[..] else {
        return Err("`list` did not print two tables".into());
    };
    let elapsed = end - start;
    if elapsed < 2.0 {
        return Err(format!("only {elapsed:.1} s between the two `info`s"));
    }
    let mut shares = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let secs = |table: &[ListRow]| {
            table
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.cpu_secs)
                .ok_or_else(|| format!("`list` has no row for spin guest {name}"))
        };
        let share = (secs(last)? - secs(first)?) / elapsed;
        if !(0.25 * 0.9..=0.5 * 1.1).contains(&share) {
            return Err(format!(
                "{name} ran {share:.2} of a CPU over {elapsed:.1} s (want a quarter to a half)"
            ));
        }
        shares.push(share);
    }
    let (low, high) = shares
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), &s| (l.min(s), h.max(s)));
    if high - low > FAIRNESS * high {
        return Err(format!(
            "unfair: shares {shares:.2?} of a CPU ({:.0}% apart, at most {:.0}% allowed)",
            (high - low) / high * 100.0,
            FAIRNESS * 100.0
        ));
    }
    Ok(())
}

/// `smp-domain-spin`: the two-vCPU domain ran on both CPUs at once.
fn two_vcpus_run_in_parallel(console: &str) -> Result<(), String> {
    let [start, end, ..] = uptimes(console)[..] else {
        return Err("`info` did not print two uptimes".into());
    };
    let table = last_table(console)?;
    let row = table
        .iter()
        .find(|r| r.name == "s")
        .ok_or("`list` has no row for s")?;
    if row.vcpus != 2 {
        return Err(format!("`list` shows {} vCPUs up for s, not 2", row.vcpus));
    }
    let elapsed = end - start;
    if row.cpu_secs < 1.5 * elapsed {
        return Err(format!(
            "s ran {:.1} CPU seconds in {elapsed:.1} s: its two vCPUs did not run at once",
            row.cpu_secs
        ));
    }
    let tables = vcpu_lists(console);
    let rows = tables.first().ok_or("no `vcpu-list` table")?;
    let up = rows
        .iter()
        .filter(|r| r[0] == "s" && r[3].parse::<u32>().is_ok() && !r[4].contains('p'))
        .count();
    if up != 2 {
        return Err(format!(
            "`vcpu-list s` shows {up} vCPUs up, not 2: {rows:?}"
        ));
    }
    Ok(())
}

/// `create-vcpus`: the `vcpu-list` of a 3-vCPU domain whose guest brought
/// up only vCPU 0.
fn three_vcpus_one_up(console: &str) -> Result<(), String> {
    let tables = vcpu_lists(console);
    let rows = tables.first().ok_or("no `vcpu-list` table")?;
    let vcpus: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|r| r[0] == "s")
        .map(|r| (r[2].as_str(), r[3].as_str(), r[4].as_str()))
        .collect();
    match vcpus[..] {
        [("0", cpu0, state0), ("1", "-", "--p"), ("2", "-", "--p")]
            if cpu0.parse::<u32>().is_ok() && !state0.contains('p') =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`vcpu-list s` should show vCPU 0 up and vCPUs 1 and 2 down, got {vcpus:?}"
        )),
    }
}

/// Two CPU-bound guests `a` and `b`, started together: each is paused
/// while the other is built, so neither has a head start.
const TWO_SPINS: &[Step] = &[
    Type("create spin name=a"),
    Type("pause a"),
    Type("create spin name=b"),
    Type("pause b"),
    Type("unpause a"),
    Type("unpause b"),
];

/// What a domU printed, as dom0's console back-end shows it: the text
/// after dom0's `[<name>] ` prefix (and any hypervisor tag before it).
pub fn domu_text<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let text = guest_text(Hypervisor::HvCore, line)?;
    let rest = text.strip_prefix('[')?;
    let (tag, text) = rest.split_once("] ")?;
    (tag == name).then_some(text)
}

/// The result line domU `name` printed for test guest `guest`.
pub fn domu_verdict(console: &str, name: &str, guest: &str) -> Result<Verdict, String> {
    let results: Vec<_> = console
        .lines()
        .filter_map(|line| domu_text(line, name))
        .filter_map(parse_result_line)
        .filter(|r| r.name == guest)
        .collect();
    match results.as_slice() {
        [] => Err(format!(
            "domain `{name}` printed no result line for {guest}"
        )),
        [one] => Ok(one.verdict.clone()),
        many => Err(format!(
            "domain `{name}` printed {} result lines",
            many.len()
        )),
    }
}

/// One row of dom0's `list` table (`Name ID Mem VCPUs State Time(s)`).
#[derive(Clone, Debug, PartialEq)]
pub struct ListRow {
    pub name: String,
    pub id: u32,
    pub mem_mib: u64,
    pub vcpus: u32,
    pub state: String,
    pub cpu_secs: f64,
}

impl ListRow {
    fn parse(text: &str) -> Option<Self> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [name, id, mem, vcpus, state, time] = words.as_slice() else {
            return None;
        };
        Some(Self {
            name: name.to_string(),
            id: id.parse().ok()?,
            mem_mib: mem.parse().ok()?,
            vcpus: vcpus.parse().ok()?,
            state: state.to_string(),
            cpu_secs: time.parse().ok()?,
        })
    }

    /// xl's state letters: `c` crashed, `d` dying.
    pub fn is_dead(&self) -> bool {
        self.state.contains(['c', 'd'])
    }
}

fn is_list_header(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    words == ["Name", "ID", "Mem", "VCPUs", "State", "Time(s)"]
}

/// Every `list` table on the console, in order. Guest output the console
/// back-end prints between rows (`[name] ...`) is skipped; the table ends
/// at the first other line that is not a row.
pub fn list_tables(console: &str) -> Vec<Vec<ListRow>> {
    let mut tables = Vec::new();
    let mut current: Option<Vec<ListRow>> = None;
    for line in console.lines() {
        let Some(text) = guest_text(Hypervisor::HvCore, line) else {
            continue;
        };
        if is_list_header(text) {
            tables.extend(current.replace(Vec::new()));
            continue;
        }
        let Some(rows) = current.as_mut() else {
            continue;
        };
        if text.starts_with('[') && text.contains("] ") {
            continue;
        }
        match ListRow::parse(text) {
            Some(row) => rows.push(row),
            None => tables.extend(current.take()),
        }
    }
    tables.extend(current);
    tables
}

/// The last `list` table, which must show Domain-0 as domain 0.
fn last_table(console: &str) -> Result<Vec<ListRow>, String> {
    let table = list_tables(console)
        .pop()
        .ok_or("no `list` table (header `Name ID Mem VCPUs State Time(s)`) on the console")?;
    match table.iter().find(|r| r.id == 0) {
        Some(row) if row.name == "Domain-0" => Ok(table),
        Some(row) => Err(format!(
            "`list` names domain 0 `{}`, not Domain-0",
            row.name
        )),
        None => Err("`list` has no row for domain 0".into()),
    }
}

/// Every `free memory: N pages` that `info` printed, in order.
pub fn free_memory_reports(console: &str) -> Vec<u64> {
    console
        .lines()
        .filter_map(|line| line.split_once("free memory: "))
        .filter_map(|(_, rest)| rest.strip_suffix(" pages")?.trim().parse().ok())
        .collect()
}

/// The last `list` table no longer shows domain `name` (which went away
/// `after` something).
fn gone_from_list(console: &str, name: &str, after: &str) -> Result<(), String> {
    let table = last_table(console)?;
    match table.iter().find(|r| r.name == name) {
        Some(row) => Err(format!(
            "`list` after {after} still shows it (id {}, state {})",
            row.id, row.state
        )),
        None => Ok(()),
    }
}

fn hello_is_gone(console: &str) -> Result<(), String> {
    gone_from_list(console, "hello", "hello exited")
}

fn pingpong_clean(console: &str) -> Result<(), String> {
    for name in ["ping", "pong"] {
        if let Some(line) = console
            .lines()
            .filter_map(|line| domu_text(line, name))
            .find(|text| text.starts_with("pingpong: ") && text.contains("mismatch"))
        {
            return Err(format!("{name}: {line}"));
        }
    }
    let table = last_table(console)?;
    match table.iter().find(|r| r.name == "ping" || r.name == "pong") {
        Some(row) => Err(format!("`list` still shows {} after it exited", row.name)),
        None => Ok(()),
    }
}

fn both_segment_guests_passed(console: &str) -> Result<(), String> {
    for name in ["sega", "segb"] {
        match domu_verdict(console, name, "domu-segment-leak")? {
            Verdict::Pass => {}
            Verdict::Fail(why) => return Err(format!("{name}: {why}")),
            Verdict::Skip(why) => return Err(format!("{name} skipped: {why}")),
        }
    }
    Ok(())
}

fn both_fpu_guests_gone(console: &str) -> Result<(), String> {
    let table = last_table(console)?;
    match table.iter().find(|r| r.name.starts_with("fp")) {
        Some(row) => Err(format!("`list` still shows {} after it exited", row.name)),
        None => Ok(()),
    }
}

fn grant_pair_passed(console: &str) -> Result<(), String> {
    for name in ["granter", "mapper"] {
        match domu_verdict(console, name, "domu-grant")? {
            Verdict::Pass => {}
            Verdict::Fail(why) => return Err(format!("{name}: {why}")),
            Verdict::Skip(why) => return Err(format!("{name} skipped: {why}")),
        }
    }
    last_table(console).map(drop)
}

fn nothing_created(console: &str) -> Result<(), String> {
    if let Some(line) = console
        .lines()
        .find(|line| crate::line_matches(line, "(hv) d# created"))
    {
        return Err(format!("a refused create still made a domain: `{line}`"));
    }
    let table = last_table(console)?;
    match table.as_slice() {
        [dom0] if dom0.id == 0 => Ok(()),
        rows => Err(format!(
            "`list` shows {} domains, want Domain-0 alone",
            rows.len()
        )),
    }
}

const CRASHERS: [&str; 4] = ["wild", "panic", "badhc", "ud2"];

fn only_spin_survives(console: &str) -> Result<(), String> {
    let table = last_table(console)?;
    let Some(spin) = table.iter().find(|r| r.name == "spin") else {
        return Err("`list` no longer shows spin".into());
    };
    if spin.is_dead() {
        return Err(format!("`list` shows spin in state {}", spin.state));
    }
    // A crashed guest may be listed as crashed or be gone, nothing else.
    if let Some(row) = table
        .iter()
        .find(|r| CRASHERS.contains(&r.name.as_str()) && !r.is_dead())
    {
        return Err(format!(
            "`list` shows {} in state {} after it crashed",
            row.name, row.state
        ));
    }
    Ok(())
}

fn hostile_passed(console: &str) -> Result<(), String> {
    match domu_verdict(console, "domu-hostile", "domu-hostile")? {
        Verdict::Pass => {}
        Verdict::Fail(why) => return Err(why),
        Verdict::Skip(why) => return Err(format!("skipped: {why}")),
    }
    last_table(console).map(drop)
}

/// `smp-pt-stress`: the guest passed and the free memory came back.
fn pt_stress_passed(console: &str) -> Result<(), String> {
    match domu_verdict(console, "domu-pt-stress", "domu-pt-stress")? {
        Verdict::Pass => {}
        Verdict::Fail(why) => return Err(why),
        Verdict::Skip(why) => return Err(format!("skipped: {why}")),
    }
    free_memory_unchanged(console, "the stress")
}

fn memory_returns(console: &str) -> Result<(), String> {
    memory_returns_after(console, CYCLES)
}

/// [`memory_returns`] for `smp-destroy-running`'s cycles.
fn memory_returns_after_running(console: &str) -> Result<(), String> {
    memory_returns_after(console, RUNNING_CYCLES)
}

/// `cycles` creates of `cycle` succeeded and the free memory `info`
/// reported before them is what it reported after.
fn memory_returns_after(console: &str, cycles: u32) -> Result<(), String> {
    let created = console
        .lines()
        .filter(|line| crate::line_matches(line, "created domain # (cycle)"))
        .count();
    if created != cycles as usize {
        return Err(format!("{created} of {cycles} creates succeeded"));
    }
    free_memory_unchanged(console, &format!("{cycles} create/destroy cycles"))
}

/// The first and last free-memory figures `info` printed are the same:
/// `what` happened between them and left nothing behind.
fn free_memory_unchanged(console: &str, what: &str) -> Result<(), String> {
    match free_memory_reports(console).as_slice() {
        [before, .., after] if before == after => Ok(()),
        [before, .., after] => Err(format!(
            "free memory {before} pages before {what}, {after} after ({:+})",
            *after as i64 - *before as i64
        )),
        _ => Err("`info` did not report free memory twice".into()),
    }
}

/// Every `vcpu-list` table, each row as its seven words (`Name ID VCPU
/// CPU State Time(s) Affinity`).
pub fn vcpu_lists(console: &str) -> Vec<Vec<Vec<String>>> {
    let mut tables = Vec::new();
    let mut current: Option<Vec<Vec<String>>> = None;
    for text in console
        .lines()
        .filter_map(|line| guest_text(Hypervisor::HvCore, line))
    {
        let words: Vec<String> = text.split_whitespace().map(String::from).collect();
        if words == ["Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity"] {
            tables.extend(current.replace(Vec::new()));
        } else if let Some(rows) = current.as_mut() {
            if words.len() == 7 && words[1].parse::<u32>().is_ok() {
                rows.push(words);
            } else if !text.starts_with('[') {
                tables.extend(current.take());
            }
        }
    }
    tables.extend(current);
    tables
}

/// Every hypervisor uptime `info` printed, in seconds, in order.
pub fn uptimes(console: &str) -> Vec<f64> {
    console
        .lines()
        .filter_map(|line| guest_text(Hypervisor::HvCore, line))
        .filter_map(|text| text.strip_prefix("uptime:"))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|clock| {
            // [Nd ]HH:MM:SS.mmm; `info` stays under a day here.
            let mut parts = clock.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            Some(h * 3600.0 + m * 60.0 + s)
        })
        .collect()
}

/// Of `smp-affinity`: a and b's CPU seconds grow about twice as fast as
/// time while each may use either CPU, about as fast once both are pinned
/// to CPU 1. (`list` shows tenths, so 0.2 s of slack per reading.)
fn cpus_run_in_parallel_until_pinned(console: &str) -> Result<(), String> {
    let vcpu_tables = vcpu_lists(console);
    let [unpinned_rows, pinned_rows, ..] = &vcpu_tables[..] else {
        return Err("fewer than two `vcpu-list` tables".into());
    };
    let row = |rows: &[Vec<String>], name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .cloned()
            .ok_or_else(|| format!("`vcpu-list` has no row for {name}"))
    };
    for name in ["a", "b"] {
        let before = row(unpinned_rows, name)?;
        if before[6] != "all" {
            return Err(format!(
                "{name}'s affinity was `{}` before the pin, not all",
                before[6]
            ));
        }
        let after = row(pinned_rows, name)?;
        if after[3] != "1" || after[6] != "1" {
            return Err(format!(
                "pinned to CPU 1, {name} shows CPU {} affinity {}",
                after[3], after[6]
            ));
        }
    }
    let [start, unpinned, pinned, end, ..] = uptimes(console)[..] else {
        return Err("`info` did not print four uptimes".into());
    };
    let tables = list_tables(console);
    let [before_pin, after_pin, last, ..] = &tables[..] else {
        return Err("fewer than three `list` tables".into());
    };
    let both = |table: &[ListRow]| {
        let time = |name: &str| table.iter().find(|r| r.name == name).map(|r| r.cpu_secs);
        match (time("a"), time("b")) {
            (Some(a), Some(b)) => Ok(a + b),
            _ => Err("a `list` table lacks a or b".to_string()),
        }
    };
    let free_cpu = both(before_pin)?;
    let free_time = unpinned - start;
    if free_cpu < 1.5 * free_time {
        return Err(format!(
            "on two CPUs a and b ran {free_cpu:.1} s in {free_time:.1} s: not in parallel"
        ));
    }
    let pinned_cpu = both(last)? - both(after_pin)?;
    let pinned_time = end - pinned;
    if pinned_cpu > 1.2 * pinned_time + 0.2 {
        return Err(format!(
            "pinned to CPU 1, a and b ran {pinned_cpu:.1} s in {pinned_time:.1} s: the pin did not hold"
        ));
    }
    Ok(())
}

fn spins_are_fair(console: &str) -> Result<(), String> {
    let table = last_table(console)?;
    let time = |name: &str| {
        table
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.cpu_secs)
            .ok_or_else(|| format!("`list` has no row for spin guest {name}"))
    };
    let (a, b) = (time("a")?, time("b")?);
    let (low, high) = (a.min(b), a.max(b));
    if low < FAIRNESS_MIN_SECS {
        return Err(format!(
            "too little CPU time to judge: a {a:.1} s, b {b:.1} s (want at least {FAIRNESS_MIN_SECS} s each)"
        ));
    }
    if high - low > FAIRNESS * high {
        return Err(format!(
            "unfair: a {a:.1} s, b {b:.1} s of CPU ({:.0}% apart, at most {:.0}% allowed)",
            (high - low) / high * 100.0,
            FAIRNESS * 100.0
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunEnd;

    fn scenario(name: &str) -> &'static Scenario {
        SCENARIOS.iter().find(|s| s.name == name).unwrap()
    }

    const TABLE: &str = "\
(d0) dom0> list
(d0) Name                                        ID   Mem VCPUs      State   Time(s)
(d0) Domain-0                                     0    64     1     r-----      12.3
(d0) [spin] spin: 7 iterations
(d0) spin                                         1    16     1     -b----       4.0
(d0) dom0> ";

    #[test]
    fn list_tables_parse_and_skip_guest_output() {
        let tables = list_tables(TABLE);
        assert_eq!(tables.len(), 1);
        let rows = &tables[0];
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "Domain-0");
        assert_eq!(rows[0].cpu_secs, 12.3);
        assert_eq!(
            rows[1],
            ListRow {
                name: "spin".into(),
                id: 1,
                mem_mib: 16,
                vcpus: 1,
                state: "-b----".into(),
                cpu_secs: 4.0,
            }
        );
        let two = format!(
            "{TABLE}list\n{}",
            TABLE.lines().skip(1).collect::<Vec<_>>().join("\n")
        );
        assert_eq!(list_tables(&two).len(), 2);
    }

    #[test]
    fn free_memory_is_read_from_info() {
        let console = "(d0) free memory: 120000 pages\n(d0) x\n(d0) free memory: 119999 pages\n";
        assert_eq!(free_memory_reports(console), [120000, 119999]);
    }

    #[test]
    fn domu_text_needs_the_name_prefix() {
        assert_eq!(
            domu_text("(d0) [hello] Hi there", "hello"),
            Some("Hi there")
        );
        assert_eq!(domu_text("(d0) [hello] Hi there", "spin"), None);
        assert_eq!(domu_text("(hv) [hello] Hi", "hello"), None);
    }

    fn hello_session(list_rows: &str) -> String {
        format!(
            "(d0) dom0> create hello\n(d0) created domain 1 (hello)\n(d0) dom0> \n\
             (d0) [hello] Hello from domain 1!\n(d0) [hello] hello: goodbye\n\
             (d0) domain 1 (hello) exited\n\
             (d0) dom0> list\n\
             (d0) Name    ID   Mem VCPUs  State   Time(s)\n\
             (d0) Domain-0  0   64     1  r-----     1.5\n{list_rows}\
             (d0) dom0> poweroff\n{POWERED_OFF}\n"
        )
    }

    #[test]
    fn create_hello_passes_when_hello_is_gone_and_fails_when_listed() {
        let s = scenario("create-hello");
        assert_eq!(
            s.check(&hello_session(""), &RunEnd::Exited(0)),
            Verdict::Pass
        );
        let verdict = s.check(
            &hello_session("(d0) hello     1   16     1  --ps--     0.1\n"),
            &RunEnd::Exited(0),
        );
        assert!(
            matches!(&verdict, Verdict::Fail(why) if why.contains("still shows it")),
            "{verdict:?}"
        );
        let no_output = hello_session("").replace("(d0) [hello] Hello from domain 1!\n", "");
        assert!(matches!(
            s.check(&no_output, &RunEnd::Exited(0)),
            Verdict::Fail(_)
        ));
    }

    fn fairness_session(a: &str, b: &str) -> String {
        format!(
            "(d0) created domain 1 (a)\n(d0) created domain 2 (b)\n(d0) dom0> list\n\
             (d0) Name ID Mem VCPUs State Time(s)\n(d0) Domain-0 0 64 1 r----- 0.9\n\
             (d0) a 1 16 1 r----- {a}\n(d0) b 2 16 1 -b---- {b}\n{POWERED_OFF}\n"
        )
    }

    fn affinity_session(free: (f64, f64), pinned: (f64, f64)) -> String {
        let table = |a: f64, b: f64| {
            format!(
                "(d0) Name ID Mem VCPUs State Time(s)\n(d0) Domain-0 0 64 1 r----- 0.1\n\
                 (d0) a 1 16 1 r----- {a:.1}\n(d0) b 2 16 1 r----- {b:.1}\n(d0) dom0> x\n"
            )
        };
        let vcpus = |cpu: u32, affinity: &str| {
            format!(
                "(d0) Name ID VCPU CPU State Time(s) Affinity\n\
                 (d0) a 1 0 {cpu} r-- 1.0 {affinity}\n(d0) b 2 0 1 r-- 1.0 {affinity}\n(d0) dom0> x\n"
            )
        };
        let uptime =
            |s: f64| format!("(d0) uptime:     00:00:{s:06.3} (hypervisor), 00:00:01.000 (dom0)\n");
        [
            uptime(1.0),
            uptime(4.0),
            table(free.0, free.1),
            uptime(4.2),
            table(3.0, 3.0),
            uptime(10.2),
            table(3.0 + pinned.0, 3.0 + pinned.1),
            vcpus(0, "all"),
            vcpus(1, "1"),
        ]
        .concat()
    }

    #[test]
    fn smp_affinity_wants_parallel_then_shared() {
        assert_eq!(
            cpus_run_in_parallel_until_pinned(&affinity_session((2.9, 2.8), (3.0, 3.0))),
            Ok(())
        );
        let serial = cpus_run_in_parallel_until_pinned(&affinity_session((1.5, 1.5), (3.0, 3.0)));
        assert!(
            matches!(&serial, Err(why) if why.contains("not in parallel")),
            "{serial:?}"
        );
        let unpinned = cpus_run_in_parallel_until_pinned(&affinity_session((3.0, 3.0), (5.9, 5.9)));
        assert!(
            matches!(&unpinned, Err(why) if why.contains("did not hold")),
            "{unpinned:?}"
        );
        let elsewhere = affinity_session((2.9, 2.8), (3.0, 3.0))
            .replace("a 1 0 1 r-- 1.0 1", "a 1 0 0 r-- 1.0 1");
        let verdict = cpus_run_in_parallel_until_pinned(&elsewhere);
        assert!(
            matches!(&verdict, Err(why) if why.contains("shows CPU 0")),
            "{verdict:?}"
        );
        assert_eq!(
            uptimes("(d0) uptime:     01:02:03.500 (hypervisor), x\n"),
            [3723.5]
        );
    }

    #[test]
    fn spin_fairness_allows_ten_percent() {
        let s = scenario("spin-fairness");
        let end = RunEnd::Exited(0);
        assert_eq!(
            s.check(&fairness_session("6.0", "5.5"), &end),
            Verdict::Pass
        );
        let verdict = s.check(&fairness_session("6.0", "5.3"), &end);
        assert!(
            matches!(&verdict, Verdict::Fail(why) if why.contains("unfair")),
            "{verdict:?}"
        );
        let verdict = s.check(&fairness_session("1.0", "1.0"), &end);
        assert!(
            matches!(&verdict, Verdict::Fail(why) if why.contains("too little")),
            "{verdict:?}"
        );
    }

    #[test]
    fn create_destroy_compares_free_memory_exactly() {
        let s = scenario("create-destroy-500");
        let session = |after: u64| {
            let mut c = String::from("(d0) free memory: 100000 pages\n");
            for _ in 0..CYCLES {
                c += "(d0) created domain 7 (cycle)\n";
            }
            c += &format!("(d0) free memory: {after} pages\n{POWERED_OFF}\n");
            c
        };
        assert_eq!(s.check(&session(100000), &RunEnd::Exited(0)), Verdict::Pass);
        let verdict = s.check(&session(99998), &RunEnd::Exited(0));
        assert!(
            matches!(&verdict, Verdict::Fail(why) if why.contains("(-2)")),
            "{verdict:?}"
        );
        let short = session(100000).replacen("(d0) created domain 7 (cycle)\n", "", 1);
        assert!(matches!(
            s.check(&short, &RunEnd::Exited(0)),
            Verdict::Fail(why) if why.contains("499 of 500")
        ));
    }

    #[test]
    fn the_hostile_guest_result_line_decides() {
        let s = scenario("hostile-domu");
        let session = |result: &str| {
            format!(
                "(d0) created domain 1 (domu-hostile)\n(d0) [domu-hostile] {result}\n\
                 (d0) domain 1 (domu-hostile) exited\n(d0) dom0> info\n\
                 (d0) free memory: 5 pages\n(d0) dom0> list\n\
                 (d0) Name ID Mem VCPUs State Time(s)\n(d0) Domain-0 0 64 1 r----- 0.9\n\
                 {POWERED_OFF}\n"
            )
        };
        assert_eq!(
            s.check(&session("PASS domu-hostile"), &RunEnd::Exited(0)),
            Verdict::Pass
        );
        assert_eq!(
            s.check(
                &session("FAIL domu-hostile: not true: sysctl physinfo gives -1 (got 0)"),
                &RunEnd::Exited(0)
            ),
            Verdict::Fail("not true: sysctl physinfo gives -1 (got 0)".into())
        );
        // dom0 must still be there to power off.
        let verdict = s.check(&session("PASS domu-hostile"), &RunEnd::TimedOut);
        assert!(matches!(verdict, Verdict::Fail(why) if why.contains("timed out")));
    }

    #[test]
    fn a_crashed_survivor_or_a_live_crasher_fails() {
        let table = |spin: &str, extra: &str| {
            format!(
                "(d0) Name ID Mem VCPUs State Time(s)\n(d0) Domain-0 0 64 1 r----- 0.9\n\
                 (d0) spin 1 16 1 {spin} 9.0\n{extra}(d0) dom0> poweroff\n"
            )
        };
        assert_eq!(only_spin_survives(&table("r-----", "")), Ok(()));
        assert_eq!(
            only_spin_survives(&table("r-----", "(d0) wild 2 16 1 ----c- 0.1\n")),
            Ok(())
        );
        assert!(only_spin_survives(&table("----c-", "")).is_err());
        assert!(only_spin_survives(&table("r-----", "(d0) ud2 5 16 1 -b---- 0.1\n")).is_err());
    }
}
