from localcloud.modelserver.server import main

if __name__ == "__main__":
    main()
