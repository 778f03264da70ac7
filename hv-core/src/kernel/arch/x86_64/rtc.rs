//! The CMOS real-time clock, read once at boot for the wallclock guests see.

use x86_64::instructions::port::Port;

fn read(reg: u8) -> u8 {
    let mut index: Port<u8> = Port::new(0x70);
    let mut data: Port<u8> = Port::new(0x71);
    // SAFETY: the CMOS index/data ports belong to hv-core; reading a
    // clock register has no side effects (NMIs stay enabled: bit 7 clear).
    unsafe {
        index.write(reg);
        data.read()
    }
}

/// The RTC's date and time, as (year, month, day, hour, minute, second).
pub fn read_time() -> (u32, u32, u32, u32, u32, u32) {
    // Wait out an update in progress, then read until two reads agree.
    let snapshot = || {
        while read(0x0a) & 0x80 != 0 {
            core::hint::spin_loop();
        }
        [
            read(0x00),
            read(0x02),
            read(0x04),
            read(0x07),
            read(0x08),
            read(0x09),
            read(0x32),
        ]
    };
    let mut now = snapshot();
    loop {
        let again = snapshot();
        if again == now {
            break;
        }
        now = again;
    }
    let status_b = read(0x0b);
    let bcd = status_b & 0x04 == 0;
    let decode = |v: u8| if bcd { (v & 0x0f) + (v >> 4) * 10 } else { v } as u32;
    let [sec, min, hour, day, month, year, century] = now;
    let pm = hour & 0x80 != 0;
    let mut hour = decode(hour & 0x7f);
    if status_b & 0x02 == 0 {
        // 12-hour clock.
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let century = match decode(century) {
        19..=21 => decode(century),
        _ => 20,
    };
    (
        century * 100 + decode(year),
        decode(month),
        decode(day),
        hour,
        decode(min),
        decode(sec),
    )
}
