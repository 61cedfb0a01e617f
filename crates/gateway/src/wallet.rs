//! Wallet (bech32) address validation, as the mixnet contract will see the address.

use thiserror::Error;

/// Why a wallet address was refused. The texts are the ones operators know.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WalletError {
    /// Not bech32 at all.
    #[error("wallet address decoding failed: {0}")]
    Decoding(String),
    /// Bech32, but for another network.
    #[error("wallet address type is wrong, your bech32 address prefix should be {expected}, not {actual}")]
    WrongPrefix {
        /// The network's prefix.
        expected: String,
        /// The address's prefix.
        actual: String,
    },
}

/// Checks that `address` (already trimmed) is a bech32 address with the network's prefix.
pub fn validate(address: &str, expected_prefix: &str) -> Result<(), WalletError> {
    let (hrp, _data) = bech32::decode(address).map_err(|e| WalletError::Decoding(e.to_string()))?;
    if hrp.as_str() != expected_prefix {
        return Err(WalletError::WrongPrefix {
            expected: expected_prefix.to_owned(),
            actual: hrp.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_mainnet_address() {
        assert_eq!(
            validate("n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy", "n"),
            Ok(())
        );
    }

    #[test]
    fn rejects_a_sandbox_address_on_mainnet() {
        let err = validate("nymt1z9egw0knv47nmur0p8vk4rcx59h9gg4zuxrrr9", "n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "wallet address type is wrong, your bech32 address prefix should be n, not nymt"
        );
    }

    #[test]
    fn rejects_garbage() {
        let err = validate("definitely-not-bech32", "n").unwrap_err();
        assert!(matches!(err, WalletError::Decoding(_)), "{err:?}");
        // A single flipped character breaks the checksum.
        let err = validate("n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gz", "n").unwrap_err();
        assert!(matches!(err, WalletError::Decoding(_)), "{err:?}");
    }
}
