//! Identifiers drawn from the sandbox's seeded RNG: message ids, media ids, conversation ids,
//! trace ids. Same seed and same request order give the same ids.

use base64::Engine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seed of the id streams in reset epoch `epoch` (see `POST /_mynah/reset`): the configured
/// seed itself in epoch 0, so a fresh start repeats the same ids, and a well-mixed other seed in
/// every later epoch, so ids drawn after a reset never repeat those drawn before it.
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    if epoch == 0 {
        seed
    } else {
        splitmix64(seed ^ splitmix64(epoch ^ 0x6570_6f63_685f_6964))
    }
}

/// The seed of the trace id of request number `n` in reset epoch `epoch` of the data directory's
/// start number `boot`. Epoch 0 of the first start keeps the original formula, so a fresh start
/// repeats its trace ids; any other (epoch, start) draws from seeds of its own.
pub fn trace_seed(seed: u64, epoch: u64, boot: u64, n: u64) -> u64 {
    if epoch == 0 && boot == 0 {
        seed ^ n.rotate_left(17)
    } else {
        let base = splitmix64(epoch_seed(seed, epoch) ^ splitmix64(boot ^ 0x626f_6f74_5f74_7263));
        splitmix64(base ^ splitmix64(n))
    }
}

/// SplitMix64's finaliser: a bijective, well-mixing map of 64-bit values.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The sandbox's random source: seeded, so runs are reproducible.
#[derive(Debug, Clone)]
pub struct Ids {
    rng: ChaCha8Rng,
}

impl Ids {
    /// A generator for `seed`, on its own stream (`stream` separates independent consumers so
    /// that, e.g., webhook chaos does not shift message ids).
    pub fn new(seed: u64, stream: u64) -> Ids {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Ids { rng }
    }

    /// The underlying RNG, for draws other than ids.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// A `wamid.` id shaped like the platform's: base64 of a small binary record that carries
    /// the user's number and a random 16-byte hex tag.
    pub fn wamid(&mut self, wa_id: &str) -> String {
        let tag: [u8; 8] = self.rng.random();
        let mut raw = Vec::with_capacity(40 + wa_id.len());
        raw.extend_from_slice(&[0x1C, 0x18, wa_id.len().min(255) as u8]);
        raw.extend_from_slice(wa_id.as_bytes());
        raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x11, 0x18, 0x10]);
        raw.extend_from_slice(hex::encode_upper(tag).as_bytes());
        raw.push(0x00);
        let mut out = String::with_capacity(8 + raw.len() * 4 / 3 + 4);
        out.push_str("wamid.");
        base64::engine::general_purpose::STANDARD.encode_string(&raw, &mut out);
        out
    }

    /// A numeric id (media ids, template ids): 15 or 16 digits.
    pub fn numeric(&mut self) -> String {
        self.rng
            .random_range(100_000_000_000_000u64..10_000_000_000_000_000)
            .to_string()
    }

    /// A 32-hex-digit id (conversation ids).
    pub fn hex32(&mut self) -> String {
        let b: [u8; 16] = self.rng.random();
        hex::encode(b)
    }

    /// A trace id for error envelopes.
    pub fn trace(&mut self) -> String {
        let b: [u8; 12] = self.rng.random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    /// A uniform draw in `[lo, hi]`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.rng.random_range(lo..=hi)
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.rng.random::<f64>() < p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat() {
        let mut a = Ids::new(7, 0);
        let mut b = Ids::new(7, 0);
        let w = a.wamid("4915112345678");
        assert_eq!(w, b.wamid("4915112345678"));
        assert!(w.starts_with("wamid.HBgN"));
        assert_ne!(a.wamid("4915112345678"), w);
        assert_ne!(Ids::new(8, 0).wamid("1"), Ids::new(7, 0).wamid("1"));
    }

    #[test]
    fn epoch_zero_is_the_configured_seed_and_later_epochs_differ() {
        assert_eq!(epoch_seed(7, 0), 7);
        assert_eq!(trace_seed(7, 0, 0, 3), 7 ^ 3u64.rotate_left(17));
        let seeds: std::collections::HashSet<u64> = (0..1_000).map(|e| epoch_seed(7, e)).collect();
        assert_eq!(seeds.len(), 1_000);
        assert_ne!(trace_seed(7, 0, 1, 0), trace_seed(7, 0, 0, 0));
        assert_ne!(trace_seed(7, 1, 0, 0), trace_seed(7, 0, 1, 0));
    }
}
