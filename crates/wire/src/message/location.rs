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

#[cfg(test)]
mod tests {
    use crate::message::{BodyFlavor, Content, Request, parse_request};

    fn location(body: &str) -> (f64, f64) {
        match parse_request(body.as_bytes(), BodyFlavor::Cloud) {
            Ok(Request::Send(m)) => match m.content {
                Content::Location(l) => (l.latitude, l.longitude),
                other => panic!("not a location: {other:?}"),
            },
            other => panic!("did not parse: {other:?}"),
        }
    }

    #[test]
    fn coordinates_parse_to_the_nearest_double() {
        // Shortest forms of doubles that serde_json's default parser read one unit in the last
        // place off: a number and the same number as a string gave different coordinates, and
        // the body the gateway forwards carried other digits than the one it was sent.
        let body = |lat: &str, long: &str| {
            format!(
                r#"{{"messaging_product":"whatsapp","to":"4915112345678","type":"location","location":{{"latitude":{lat},"longitude":{long}}}}}"#
            )
        };
        let want = (10.938711676632721, -57.179661383605676);
        assert_eq!(
            location(&body("10.938711676632721", "-57.179661383605676")),
            want
        );
        assert_eq!(
            location(&body(r#""10.938711676632721""#, r#""-57.179661383605676""#)),
            want
        );
        let Ok(Request::Send(m)) = parse_request(
            body("10.938711676632721", "-57.179661383605676").as_bytes(),
            BodyFlavor::Cloud,
        ) else {
            panic!("did not parse");
        };
        let again = serde_json::to_string(&m).unwrap();
        assert!(
            again.contains(r#""latitude":10.938711676632721,"longitude":-57.179661383605676"#),
            "{again}"
        );
    }
}
