//! Shared helpers for the test guests: each binary under `src/bin/` is one
//! PV guest kernel that prints a single result line and shuts down.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]
