//! Lenient scalars (a value of another JSON type reads as absent) and borrowed map keys.

use super::*;

/// What a JSON scalar reads as, where it has the right type.
pub(super) trait Scalar: Sized {
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_text(_: &str) -> Option<Self> {
        None
    }
    fn from_string(s: String) -> Option<Self> {
        Self::from_text(&s)
    }
}

impl Scalar for String {
    fn from_text(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
    fn from_string(s: String) -> Option<Self> {
        Some(s)
    }
}

/// A finite number; numeric strings are accepted too.
impl Scalar for f64 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v).filter(|f| f.is_finite())
    }
    fn from_text(s: &str) -> Option<Self> {
        s.trim().parse::<f64>().ok().filter(|f| f.is_finite())
    }
}

/// A whole number; numeric strings and whole floats are accepted too.
impl Scalar for i64 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v)
    }
    fn from_u64(v: u64) -> Option<Self> {
        i64::try_from(v).ok()
    }
    fn from_f64(v: f64) -> Option<Self> {
        whole_to_i64(v)
    }
    fn from_text(s: &str) -> Option<Self> {
        let s = s.trim();
        s.parse::<i64>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().and_then(whole_to_i64))
    }
}

impl Scalar for bool {
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

/// Reads any JSON value as `Some(T)` when it has T's type, else None (arrays and
/// objects are read through and dropped).
pub(super) struct Lenient<T>(pub(super) std::marker::PhantomData<T>);

pub(super) const STR: Lenient<String> = Lenient(std::marker::PhantomData);
pub(super) const NUM: Lenient<f64> = Lenient(std::marker::PhantomData);
pub(super) const INT: Lenient<i64> = Lenient(std::marker::PhantomData);
pub(super) const BOOL: Lenient<bool> = Lenient(std::marker::PhantomData);

impl<'de, T: Scalar> DeserializeSeed<'de> for Lenient<T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Scalar> Visitor<'de> for Lenient<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(T::from_bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(T::from_i64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(T::from_u64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(T::from_f64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(T::from_text(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(T::from_string(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }
}

pub(super) fn whole_to_i64(f: f64) -> Option<i64> {
    // 9.2e18 is below i64::MAX (9.223e18), so the cast cannot saturate.
    if f.is_finite() && f.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

/// Reads a map key as a `K`, matching the borrowed text (no allocation).
pub(super) struct Key<K>(pub(super) fn(&str) -> K);

impl<'de, K> DeserializeSeed<'de> for Key<K> {
    type Value = K;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K> Visitor<'de> for Key<K> {
    type Value = K;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<K, E> {
        Ok((self.0)(v))
    }
}
