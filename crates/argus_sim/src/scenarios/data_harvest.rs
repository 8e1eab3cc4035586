//! Information leakage: a seller-staff account (malicious or compromised) harvests buyers' addresses
//! and phone numbers through the order tools. `size` = buyer records taken per campaign. Camouflage
//! paces the harvest under normal per-hour volumes, keeps to business hours over many days, and uses
//! the staff member's own device and network.

use super::*;
use crate::honest::business_hours;

pub fn run(cx: &mut Ctx<'_>) {
    for _ in 0..cx.count {
        cx.begin();
        let n = cx.size();
        let start = cx.start(5 * DAY);
        // A staff member of an existing seller.
        let staff: Vec<u32> = (cx.w.honest + 1..cx.w.people).collect();
        let actor = staff[cx.rng.index(staff.len())];
        let seller = cx.w.users[actor as usize].staff_of;
        let careful = cx.camo();
        let u = cx.w.users[actor as usize].clone();
        let (device, ip) = if careful {
            (u.devices[0], u.home_ip)
        } else {
            (cx.w.new_device(), cx.datacenter_ip())
        };
        // Records per hour: a scripted export, or a patient insider below the usual volumes.
        let rate = if careful {
            cx.rng.range(15, 40) as f64
        } else {
            cx.rng.range(150, 600) as f64
        } * cx.k.intensity.max(0.05);
        let gap = (HOUR as f64 / rate) as i64;
        let mut t = if careful {
            business_hours(start, &mut cx.rng)
        } else {
            start
        };
        for _ in 0..n {
            t += cx.rng.range(gap / 2, gap * 3 / 2).max(SEC);
            if careful {
                t = business_hours(t, &mut cx.rng);
            }
            let buyer = cx.w.pick_honest(&mut cx.rng);
            let kind = *cx.rng.pick(&[0u8, 0, 1]);
            cx.emit(
                Role::Harvester,
                Ev {
                    t,
                    kind: Kind::DataAccess,
                    actor,
                    device,
                    ip,
                    flag: kind,
                    aux: buyer,
                    seller,
                    ..Default::default()
                },
            );
        }
        cx.end();
    }
}
