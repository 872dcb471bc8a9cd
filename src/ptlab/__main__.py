from ptlab.cli import main

main()
