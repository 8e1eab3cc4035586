//! `distance_km`: great-circle distance between two points (haversine, mean Earth radius).

use super::{f, FunctionDef};
use crate::types::Type;
use crate::value::{EvalError, Val};

pub fn defs() -> Vec<FunctionDef> {
    vec![FunctionDef {
        name: "distance_km",
        method: false,
        params: vec![Type::Double, Type::Double, Type::Double, Type::Double],
        ret: Type::Double,
        doc: "`distance_km(lat1, lon1, lat2, lon2)`: kilometres between two points in degrees, e.g. the billing address and the IP's location. Latitudes outside ±90 or longitudes outside ±180 are errors.",
        examples: &[("distance_km(0.0, 0.0, 0.0, 0.0)", "0.0"), ("int(distance_km(48.8566, 2.3522, 51.5074, -0.1278))", "343")],
        eval: |a| {
            let (la1, lo1, la2, lo2) = (f(&a[0])?, f(&a[1])?, f(&a[2])?, f(&a[3])?);
            if [la1, la2].iter().any(|x| !(-90.0..=90.0).contains(x)) || [lo1, lo2].iter().any(|x| !(-180.0..=180.0).contains(x)) {
                return Err(EvalError::Invalid("coordinates out of range".into()));
            }
            let (p1, p2) = (la1.to_radians(), la2.to_radians());
            let dp = p2 - p1;
            let dl = (lo2 - lo1).to_radians();
            let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
            Ok(Val::Double(2.0 * 6371.0088 * h.sqrt().min(1.0).asin()))
        },
    }]
}
