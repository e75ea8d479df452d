from tl_lightning.cli import main

main()
