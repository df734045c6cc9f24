//! `cargo run -p e2e --bin contracts`: writes docs/openapi.json and
//! docs/asyncapi.yaml from the code (run from the workspace root).

fn main() -> std::io::Result<()> {
    std::fs::create_dir_all("docs")?;
    std::fs::write(e2e::contracts::OPENAPI_PATH, e2e::contracts::openapi_text())?;
    std::fs::write(
        e2e::contracts::ASYNCAPI_PATH,
        e2e::contracts::asyncapi_text(),
    )?;
    println!(
        "wrote {} and {}",
        e2e::contracts::OPENAPI_PATH,
        e2e::contracts::ASYNCAPI_PATH
    );
    Ok(())
}
