//! Pagination (AIP-158): `page_size` with a default and a maximum, and an
//! opaque `page_token`.

use crate::error::Error;

/// A page request, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub size: i64,
    pub offset: i64,
}

impl Page {
    pub fn from_request(size: i32, token: &str, default: i64, max: i64) -> Result<Page, Error> {
        if size < 0 {
            return Err(Error::invalid("page_size", "must not be negative"));
        }
        let size = if size == 0 {
            default
        } else {
            i64::from(size).min(max)
        };
        let offset = if token.is_empty() {
            0
        } else {
            decode(token)
                .ok_or_else(|| Error::invalid("page_token", "is not a token this service issued"))?
        };
        Ok(Page { size, offset })
    }

    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Trims the extra row and returns the next page's token ("" if none).
    pub fn next_token<T>(&self, rows: &mut Vec<T>) -> String {
        if rows.len() as i64 > self.size {
            rows.truncate(self.size as usize);
            encode(self.offset.saturating_add(self.size))
        } else {
            String::new()
        }
    }
}

fn encode(offset: i64) -> String {
    format!("o{}", hex::encode(offset.to_be_bytes()))
}

fn decode(token: &str) -> Option<i64> {
    let bytes = hex::decode(token.strip_prefix('o')?).ok()?;
    let offset = i64::from_be_bytes(bytes.try_into().ok()?);
    (offset >= 0).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let p = Page::from_request(2, "", 10, 100).unwrap();
        let mut rows = vec![1, 2, 3];
        let token = p.next_token(&mut rows);
        assert_eq!(rows, [1, 2]);
        let next = Page::from_request(2, &token, 10, 100).unwrap();
        assert_eq!(next.offset, 2);
        assert!(Page::from_request(2, "zzz", 10, 100).is_err());
        assert!(Page::from_request(-1, "", 10, 100).is_err());
        assert_eq!(Page::from_request(5000, "", 10, 100).unwrap().size, 100);
    }
}
