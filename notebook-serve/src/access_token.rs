//! The secret in the notebook's URL: every request must carry it, so that
//! other users of the machine, and pages open in the same browser, cannot
//! drive the notebook (the port alone is no secret on a shared machine).

/// A random 128-bit token, as 32 hex digits.
#[derive(Clone)]
pub struct AccessToken(String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(..)")
    }
}

impl AccessToken {
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the token, compared in a time that does not
    /// depend on where they first differ.
    pub fn admits(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_is_admitted() {
        let token = AccessToken::random();
        assert_eq!(token.as_str().len(), 32);
        assert!(token.admits(token.as_str()));
        assert!(!token.admits(""));
        assert!(!token.admits(&token.as_str()[..31]));
        assert!(!token.admits(&format!("{}0", token.as_str())));
        assert_ne!(token.as_str(), AccessToken::random().as_str());
    }
}
