from ceir_sdk.cli import main

main()
