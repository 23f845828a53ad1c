from clftrain.cli import main

main()
