//! The token key a command signs or verifies with.

use std::path::PathBuf;

use clap::Args;
use jixiao_runtime::TokenKey;

#[derive(Args, Clone)]
pub struct KeyArgs {
    /// Folder of the embedded SQLite databases and of the generated token key.
    #[arg(long, env = "JIXIAO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Token signing key as hex (at least 32 bytes). Without it, the key in
    /// `<data-dir>/token.key` is used, generated on first start.
    #[arg(long, env = "JIXIAO_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<String>,
    /// File holding the token signing key as hex.
    #[arg(long, env = "JIXIAO_TOKEN_KEY_FILE", conflicts_with = "token_key")]
    pub token_key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The key, and whether it is the generated development key.
    pub fn load(&self, create: bool) -> Result<(TokenKey, bool), String> {
        if let Some(hex) = &self.token_key {
            return Ok((TokenKey::from_hex(hex.trim())?, false));
        }
        if let Some(path) = &self.token_key_file {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok((TokenKey::from_hex(text.trim())?, false));
        }
        let path = self.data_dir.join("token.key");
        if !create && !path.exists() {
            return Err(format!(
                "no token key: pass --token-key or --token-key-file, or start `jixiao serve` once to generate {}",
                path.display()
            ));
        }
        let (key, _) = TokenKey::load_or_create(&path)?;
        Ok((key, true))
    }
}
