//! `type: "location"` (spec §2.4), also used by location template parameters.

use super::validate::{Number, Path, missing, out_of_range};
use crate::error::ApiError;
use serde::{Deserialize, Serialize};

/// A location pin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Location {
    /// Latitude in degrees, −90 to 90.
    pub latitude: f64,
    /// Longitude in degrees, −180 to 180.
    pub longitude: f64,
    /// Name of the place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Address of the place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `location` as sent; coordinates as numbers or numeric strings.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
pub(crate) struct RawLocation {
    latitude: Option<Number>,
    longitude: Option<Number>,
    name: Option<String>,
    address: Option<String>,
}

impl RawLocation {
    pub(crate) fn validate(self, p: &Path<'_>) -> Result<Location, ApiError> {
        let lat_p = p.key("latitude");
        let latitude = self.latitude.ok_or_else(|| missing(&lat_p))?.0;
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(out_of_range(&lat_p, "a number between -90 and 90"));
        }
        let long_p = p.key("longitude");
        let longitude = self.longitude.ok_or_else(|| missing(&long_p))?.0;
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(out_of_range(&long_p, "a number between -180 and 180"));
        }
        Ok(Location {
            latitude,
            longitude,
            name: self.name,
            address: self.address,
        })
    }
}
